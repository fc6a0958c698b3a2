"""Write the scale benchmark's corpora as bulk NDJSON files, once, from the real encodings.

``runs/scale/data/splade-00000.ndjson`` ... hold the synthetic SPLADE documents (feature
keys of the model's vocabulary, as the package writes them) and ``bm25-*.ndjson`` the
matching texts, ``CHUNK`` documents a file, so any size that is a multiple of ``CHUNK`` is a
prefix of the files. ``stats.npz`` keeps, for each size, the document frequencies of the
generated corpus and the terms per document (for the df pruning rule and the plot).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from scale_synthetic import Packed, Recipe, WordTable, generate_texts, generate_vectors

CHUNK = 10_000


@dataclass(frozen=True)
class RealCorpus:
    """The real encodings (``encode_real.py``): documents, queries, texts."""

    documents: Packed
    queries: Packed
    query_names: list[str]
    doc_names: list[str]
    texts: list[list[str]]

    @classmethod
    def load(cls, folder: Path) -> RealCorpus:
        data = np.load(folder / "real.npz")
        documents = Packed(data["doc_offsets"], data["doc_ids"], data["doc_weights"])
        queries = Packed(data["query_offsets"], data["query_ids"], data["query_weights"])
        texts = [
            json.loads(line)["text"].split()
            for line in (folder / "texts.jsonl").read_text().splitlines()
        ]
        return cls(
            documents,
            queries,
            [str(n) for n in data["query_names"]],
            [str(n) for n in data["doc_names"]],
            texts,
        )


def splade_lines(packed: Packed, keys: Sequence[str], first: int, field: str) -> bytes:
    """Bulk NDJSON for synthetic documents ``first``... (ids ``s<number>``)."""
    out = bytearray()
    for i in range(len(packed)):
        ids, weights = packed.vector(i)
        features = {keys[int(t)]: float(w) for t, w in zip(ids, weights, strict=True)}
        out += orjson.dumps({"index": {"_id": f"s{first + i}"}}) + b"\n"
        out += orjson.dumps({field: features}) + b"\n"
    return bytes(out)


def text_lines(texts: Sequence[str], first: int) -> bytes:
    out = bytearray()
    for i, text in enumerate(texts):
        out += orjson.dumps({"index": {"_id": f"s{first + i}"}}) + b"\n"
        out += orjson.dumps({"text": text}) + b"\n"
    return bytes(out)


def write_corpus(
    real: RealCorpus,
    keys: Sequence[str],
    sizes: Sequence[int],
    out: Path,
    recipe: Recipe,
    field: str = "splade",
) -> None:
    """Write ``max(sizes)`` documents (skipped when ``out`` already has them) and the
    document frequencies and lengths at each size."""
    total = max(sizes)
    done = out / f"done-{total}-{recipe.keep}-{recipe.sigma}-{recipe.seed}"
    if done.exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    vocabulary = len(keys)
    df = np.zeros(vocabulary, dtype=np.int64)
    lengths: list[np.ndarray] = []
    stats: dict[str, np.ndarray] = {}
    table = WordTable.of(real.texts)
    started = last = time.monotonic()
    for first, packed, templates in generate_vectors(
        real.documents, vocabulary, total, recipe, CHUNK
    ):
        name = f"{first // CHUNK:05d}.ndjson"
        (out / f"splade-{name}").write_bytes(splade_lines(packed, keys, first, field))
        texts = generate_texts(real.texts, table, templates, recipe, first // CHUNK)
        (out / f"bm25-{name}").write_bytes(text_lines(texts, first))
        df += packed.document_frequencies(vocabulary)
        lengths.append(packed.lengths())
        end = first + len(packed)
        if end in sizes:
            stats[f"df_{end}"] = df.copy()
            stats[f"lengths_{end}"] = np.concatenate(lengths)
        if time.monotonic() - last > 5:
            last = time.monotonic()
            print(f"generated {end}/{total} documents ({end / (last - started):.0f}/s)", flush=True)
    np.savez_compressed(out / "stats.npz", **stats)
    done.touch()
