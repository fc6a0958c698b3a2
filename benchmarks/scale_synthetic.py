"""Synthetic SPLADE documents (and BM25 texts) grown from a real encoded corpus.

Real encoding of a million documents does not fit a 2-core machine (about 20 documents/s),
so the scale benchmark builds its corpora from real vectors by *template and replace*:

* document ``j`` copies a real document ``i`` chosen uniformly (its template), so the number
  of terms per document follows the real distribution exactly;
* each of the template's terms is kept with probability ``keep``; every other term is
  replaced by a term drawn from the real corpus's term distribution ``p(t) = df(t) / sum df``
  (no duplicates within a document), and takes the replaced term's weight;
* every weight is multiplied by ``exp(N(0, sigma))`` noise.

In expectation a term then occurs in ``N * df(t) / n`` of ``N`` generated documents (``keep``
of it from copies, ``1 - keep`` from replacements, whose draws follow ``df``), the same
document frequency profile as the real ``n`` documents, scaled; half of each document's
terms still co-occur as in real text. What it cannot make: terms the real corpus never holds
(the vocabulary does not grow with ``N`` as real text would). The BM25 side does the same to
the template's words, replacing each with probability ``1 - keep`` by a word drawn from the
real corpus's word frequencies, so the texts keep the real lengths and vocabulary.

Pure numpy; ``generate_vectors`` and ``generate_texts`` are deterministic for a seed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Ids = npt.NDArray[np.int64]
Weights = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Packed:
    """Variable-length sparse vectors, concatenated: vector ``i`` is
    ``ids[offsets[i]:offsets[i + 1]]`` with its ``weights``."""

    offsets: npt.NDArray[np.int64]
    ids: Ids
    weights: Weights

    def __len__(self) -> int:
        return int(len(self.offsets) - 1)

    def vector(self, i: int) -> tuple[Ids, Weights]:
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.ids[start:end], self.weights[start:end]

    def lengths(self) -> npt.NDArray[np.int64]:
        return np.diff(self.offsets)

    def document_frequencies(self, vocabulary: int) -> npt.NDArray[np.int64]:
        """How many vectors hold each id (ids are distinct within a vector)."""
        return np.bincount(self.ids, minlength=vocabulary).astype(np.int64)


@dataclass(frozen=True)
class Recipe:
    """How to grow a corpus: ``keep`` share of template terms, weight noise ``sigma``."""

    keep: float = 0.5
    sigma: float = 0.1
    seed: int = 13

    def __post_init__(self) -> None:
        if not 0 <= self.keep <= 1:
            raise ValueError(f"keep={self.keep!r}: expected a share in [0, 1].")
        if self.sigma < 0:
            raise ValueError(f"sigma={self.sigma!r}: expected >= 0.")


def _chunk_rng(recipe: Recipe, chunk: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([recipe.seed, salt, chunk])


def generate_vectors(
    real: Packed, vocabulary: int, count: int, recipe: Recipe, chunk: int = 10_000
) -> Iterator[tuple[int, Packed, npt.NDArray[np.int64]]]:
    """``count`` synthetic vectors, ``chunk`` at a time: ``(first index, vectors, templates)``.

    Chunks are seeded by their position, so any prefix of a larger corpus is the smaller
    corpus (10k is the first tenth of 100k).
    """
    df = real.document_frequencies(vocabulary).astype(np.float64)
    p = df / df.sum()
    cumulative = np.cumsum(p)
    for first in range(0, count, chunk):
        rng = _chunk_rng(recipe, first // chunk, 0)
        size = min(chunk, count - first)
        templates = rng.integers(0, len(real), size=size)
        offsets, ids, weights = [0], [], []
        for template in templates:
            t_ids, t_weights = real.vector(int(template))
            new_ids = _replaced(t_ids, recipe.keep, cumulative, rng)
            noise = np.exp(rng.normal(0.0, recipe.sigma, size=len(t_ids)))
            ids.append(new_ids)
            weights.append((t_weights * noise).astype(np.float32))
            offsets.append(offsets[-1] + len(t_ids))
        yield (
            first,
            Packed(np.asarray(offsets, np.int64), np.concatenate(ids), np.concatenate(weights)),
            templates,
        )


def _replaced(
    ids: Ids, keep: float, cumulative: npt.NDArray[np.float64], rng: np.random.Generator
) -> Ids:
    """``ids`` with each entry replaced, with probability ``1 - keep``, by a draw from the
    cumulative distribution; draws that repeat a term of the vector are drawn again."""
    out = ids.copy()
    replace = np.flatnonzero(rng.random(len(ids)) >= keep)
    last = len(cumulative) - 1
    for _ in range(20):
        if not len(replace):
            break
        draws = np.searchsorted(cumulative, rng.random(len(replace)) * cumulative[-1], "right")
        out[replace] = np.minimum(draws, last)
        _, first = np.unique(out, return_index=True)
        repeated = np.ones(len(out), dtype=bool)
        repeated[first] = False
        replace = np.flatnonzero(repeated)
    if len(replace):  # a tiny vocabulary: give up on the repeats, keep the template's terms
        out[replace] = ids[replace]
        out = _distinct(out, ids)
    return out


def _distinct(out: Ids, ids: Ids) -> Ids:
    """Fallback: the template's own (distinct) ids."""
    return out if len(np.unique(out)) == len(out) else ids.copy()


@dataclass(frozen=True)
class WordTable:
    """The real corpus's words and how often each occurs."""

    words: list[str]
    cumulative: npt.NDArray[np.float64]

    @classmethod
    def of(cls, texts: Sequence[Sequence[str]]) -> WordTable:
        counter = Counter(word for text in texts for word in text)
        words = sorted(counter)
        return cls(words, np.cumsum([counter[w] for w in words], dtype=np.float64))


def generate_texts(
    real: Sequence[Sequence[str]],
    table: WordTable,
    templates: npt.NDArray[np.int64],
    recipe: Recipe,
    salt: int,
) -> list[str]:
    """Texts for documents whose vectors were grown from ``templates``: each keeps the
    template's length, each word kept with probability ``keep`` or replaced by a word drawn
    from the real corpus's word frequencies."""
    rng = _chunk_rng(recipe, salt, 1)
    last = len(table.words) - 1
    texts = []
    for template in templates:
        source = real[int(template)]
        replace = rng.random(len(source)) >= recipe.keep
        draws = np.searchsorted(
            table.cumulative, rng.random(int(replace.sum())) * table.cumulative[-1], "right"
        )
        picks = iter(table.words[min(int(d), last)] for d in draws)
        texts.append(
            " ".join(next(picks) if r else w for w, r in zip(source, replace, strict=True))
        )
    return texts
