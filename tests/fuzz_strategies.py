"""Hypothesis strategies for ``test_fuzz.py``: records, valid queries and invalid queries.

Valid and invalid inputs come from separate strategies, so a test knows which outcome each
input must have without re-deriving it, and counts of "encoded" never include inputs that
only went through validation.
"""

from __future__ import annotations

import string
from typing import Any

from corpus_fixture import DOCS
from hypothesis import strategies as st

SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
CHARS = st.one_of(
    st.characters(),  # any Unicode scalar
    st.characters(max_codepoint=0x1F),  # C0 controls, NUL included
    st.characters(min_codepoint=0x7F, max_codepoint=0x9F),  # DEL and C1 controls
    st.sampled_from("\u200b\ufeff\u202e\u0301\ufffd\U0010ffff"),  # invisible, bidi, combining
)
WORDS = [w.lower() for d in DOCS for w in d["text"].replace(".", " ").split()]
SPECIAL = ["", " ", "\t\n", "\x00", "\u200b", "\ufeff", "%", ".", "u.s.", "100%"]


def weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``options``, each drawn with about its relative weight (hypothesis favours the
    ends of an integer range, so the first and the last come up more often: a rare option
    belongs in the middle)."""
    total = sum(weight for weight, _ in options)

    def pick(roll: int) -> st.SearchStrategy[Any]:
        for weight, strategy in options:
            if roll < weight:
                return strategy
            roll -= weight
        raise AssertionError(roll)

    return st.integers(0, total - 1).flatmap(pick)


def repeated(
    piece: st.SearchStrategy[str], min_chars: int, max_chars: int
) -> st.SearchStrategy[str]:
    """``piece`` repeated to a length in ``[min_chars, max_chars]`` (cheap to generate)."""
    return st.builds(
        lambda text, n: (text * (n // len(text) + 1))[:n], piece, st.integers(min_chars, max_chars)
    )


def enormous(min_chars: int, max_chars: int) -> st.SearchStrategy[str]:
    return repeated(st.text(CHARS, min_size=1, max_size=6), min_chars, max_chars)


def texts(big: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Record texts: mostly words and random Unicode, some empty or with a lone surrogate."""
    plain = st.text(CHARS, max_size=40)
    words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join)
    lone = st.builds(lambda a, s, b: a + s + b, plain, SURROGATE, plain)
    # Enormous texts are rare: they are slow to encode.
    return weighted((30, words), (25, plain), (8, st.sampled_from(SPECIAL)), (5, lone), (1, big))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(CHARS, max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text("abc", max_size=2), inner, max_size=3)
    ),
    max_leaves=6,
)
WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text("ab", max_size=2), st.integers(), max_size=2),
)
IDS = weighted(
    (60, st.text(CHARS, min_size=1, max_size=12)),
    (15, st.integers(-(10**6), 10**6)),
    (10, st.sampled_from(["a", "b", "1", "é", "a b", "\x00", "%2E", "_all", " "])),  # duplicates
    (3, st.sampled_from([10**600, 2**63, -1, 0])),
    (3, st.text("x", min_size=510, max_size=520)),  # around the 512-byte _id limit
    (4, st.builds(lambda a, s: a + s, st.text(CHARS, max_size=4), SURROGATE)),
    (5, WRONG),
)
RECORD_TEXTS = texts(enormous(100_000, 160_000))


def records(text: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    record = st.fixed_dictionaries(
        {"_id": IDS, "text": weighted((85, text), (15, WRONG))},
        optional={
            "title": weighted((85, text), (15, WRONG)),
            "meta": JSON_VALUES,
            "year": st.one_of(st.integers(1900, 2100), JSON_VALUES),
        },
    )
    return weighted((95, record), (5, JSON_VALUES))  # now and then not an object at all


def text_key(record: Any) -> Any:
    """A record's text where it is one, else a key equal to nothing (no constraint)."""
    text = record.get("text") if isinstance(record, dict) else None
    return text if isinstance(text, str) else object()


def record_batches(text: st.SearchStrategy[Any], min_size: int, max_size: int) -> Any:
    """Lists of records whose string texts differ (hypothesis likes to repeat a list's
    elements; ids still repeat, from ``IDS``' small pool)."""
    return st.lists(records(text), min_size=min_size, max_size=max_size, unique_by=text_key)


# -- queries ------------------------------------------------------------------------------


def script(*ranges: tuple[int, int]) -> st.SearchStrategy[str]:
    return st.one_of(*(st.characters(min_codepoint=lo, max_codepoint=hi) for lo, hi in ranges))


SCALAR = st.characters(exclude_categories=["Cs"])  # any Unicode scalar: controls, unassigned
SCRIPTS = script(
    (0x00C0, 0x024F),  # Latin with diacritics
    (0x0370, 0x03FF),  # Greek
    (0x0400, 0x04FF),  # Cyrillic
    (0x0590, 0x06FF),  # Hebrew, Arabic (right to left)
    (0x0900, 0x097F),  # Devanagari
    (0x0E00, 0x0E7F),  # Thai
    (0x0300, 0x036F),  # combining marks
)
CJK = script((0x4E00, 0x9FFF), (0x3040, 0x30FF), (0xAC00, 0xD7A3), (0xFF01, 0xFF5E))
EMOJI = st.one_of(
    script((0x1F300, 0x1FAFF), (0x2600, 0x27BF)),
    st.sampled_from(["👩\u200d💻", "🇫🇷", "👍🏽", "❤\ufe0f", "1\ufe0f\u20e3", "🏳\ufe0f\u200d🌈"]),
)
PUNCTUATION = st.sampled_from(
    string.punctuation + "¡¿«»…\u2013—“”\u2018\u2019·•§¶†‰\u2032″※、。「」"  # dashes, quotes, CJK
)
SPACE_RUN = st.text(
    st.sampled_from(" \t\n\r\x0b\x0c\x85\u00a0\u2003\u3000"), min_size=1, max_size=8
)
NUMBERS = st.one_of(
    st.integers().map(str),
    st.floats(allow_nan=False).map(str),
    st.sampled_from(["u.s.", "100%", "e-mail", "C++", "3.14e-10", "1/2", "#42", "@user", "a&b"]),
)
SEGMENT = weighted(
    (30, st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join)),
    (14, st.text(SCALAR, min_size=1, max_size=30)),
    (10, st.text(SCRIPTS, min_size=1, max_size=20)),
    (10, st.text(CJK, min_size=1, max_size=20)),
    (8, st.lists(EMOJI, min_size=1, max_size=6).map("".join)),
    (8, st.text(PUNCTUATION, min_size=1, max_size=12)),
    (8, NUMBERS),
    (6, st.text(st.sampled_from("\u200b\ufeff\u202e\u2066\u00ad\u0301"), min_size=1, max_size=4)),
)
LONG_SEGMENT = repeated(SEGMENT, 1_000, 100_000)


def join_query(pad: tuple[str, str], head: str, rest: list[tuple[str, str]]) -> str:
    return pad[0] + head + "".join(space + segment for space, segment in rest) + pad[1]


def valid_queries(long_weight: int = 2) -> st.SearchStrategy[str]:
    """Query texts every encoder must take: valid Unicode (no lone surrogate) with something
    besides whitespace; words, any script, CJK, emoji, punctuation, numbers, invisible
    characters and whitespace runs mixed, now and then 1,000-100,000 characters long."""
    padding = st.sampled_from(["", "", "", " ", "\n", "  \t", "\u3000"])
    head = weighted((50, SEGMENT), (long_weight, LONG_SEGMENT), (50, SEGMENT))  # ~1% long
    rest = st.lists(st.tuples(SPACE_RUN | st.just(" "), SEGMENT), max_size=4)
    return st.builds(join_query, st.tuples(padding, padding), head, rest).filter(str.strip)


def with_lone_surrogate(text: str, surrogates: str, at: float) -> str:
    cut = int(len(text) * at)
    return text[:cut] + surrogates + text[cut:]


INVALID_TEXTS = st.builds(
    with_lone_surrogate,
    valid_queries(long_weight=0) | st.just(""),
    weighted(
        (6, SURROGATE),
        (2, st.lists(SURROGATE, min_size=2, max_size=3).map("".join)),
        (1, st.just("\ud83d\ude00")),  # a pair written as two code points: still two lone ones
    ),
    st.floats(0, 1),
)
"""Strings the encoders must refuse: a lone surrogate somewhere (not valid Unicode)."""
NOT_TEXT = st.one_of(WRONG, st.binary(max_size=8), st.lists(st.text(max_size=3), max_size=2))
"""Non-strings, which the encoders refuse with ``TypeError``."""
BLANK = st.text(st.sampled_from(" \t\n\r\u00a0\u2003\u3000"), max_size=6)
"""Empty or whitespace-only: encodable, but search and rerank refuse them."""
