"""Encode a real corpus and its queries once with the SPLADE model, for the scale benchmark.

Writes ``real.npz``: every document's SPLADE vector (ids and weights, concatenated with
offsets), every query's vector, the query ids, the document ids and the document texts'
word counts, and ``texts.jsonl`` (id, words) for the BM25 side. The scale benchmark builds
its synthetic corpora from these real vectors (see ``scale_synthetic.py``).

    python benchmarks/scale_encode.py --data ../shared/datasets/scifact \
        --out runs/scale/real
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from splade_es.data.beir import load_queries
from splade_es.data.corpus import Rejected
from splade_es.data.readers import read_corpus
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.encoding.features import SparseVector


def packed(vectors: list[SparseVector]) -> dict[str, np.ndarray]:
    """Concatenated ids/weights with offsets (``offsets[i]:offsets[i+1]`` is vector i)."""
    lengths = np.array([len(v) for v in vectors], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.concatenate([v.ids for v in vectors]) if vectors else np.zeros(0, np.int64)
    weights = np.concatenate([v.weights for v in vectors]) if vectors else np.zeros(0, np.float32)
    return {"offsets": offsets, "ids": ids, "weights": weights}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", default="splade-tiny")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    encoder = SpladeEncoder(EncoderConfig(model=args.model, device="cpu"))
    documents = []
    for document in read_corpus(args.data / "corpus.jsonl"):
        if isinstance(document, Rejected):
            raise SystemExit(f"corpus line rejected: {document}")
        documents.append(document)
    vectors: list[SparseVector] = []
    started = last = time.monotonic()
    for start in range(0, len(documents), args.batch):
        batch = documents[start : start + args.batch]
        vectors.extend(encoder.encode_documents([d.encoded_text for d in batch]).vectors)
        if time.monotonic() - last > 10:
            last = time.monotonic()
            rate = len(vectors) / (last - started)
            print(f"encoded {len(vectors)}/{len(documents)} documents ({rate:.0f}/s)", flush=True)
    queries = load_queries(args.data)
    query_ids = sorted(queries)
    query_vectors = encoder.encode_queries([queries[q] for q in query_ids]).vectors
    docs = packed(vectors)
    qs = packed(query_vectors)
    np.savez_compressed(
        args.out / "real.npz",
        doc_offsets=docs["offsets"],
        doc_ids=docs["ids"],
        doc_weights=docs["weights"],
        query_offsets=qs["offsets"],
        query_ids=qs["ids"],
        query_weights=qs["weights"],
        query_names=np.array(query_ids),
        doc_names=np.array([d.id for d in documents]),
    )
    with (args.out / "texts.jsonl").open("w") as out:
        for document in documents:
            out.write(json.dumps({"id": document.id, "text": document.encoded_text}) + "\n")
    (args.out / "model.json").write_text(json.dumps({"model": args.model}))
    print(f"{len(vectors)} documents, {len(query_vectors)} queries in {args.out}", flush=True)


if __name__ == "__main__":
    main()
