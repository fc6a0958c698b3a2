"""The cost curve: SPLADE against BM25 from 10k to 1M documents, and query pruning measured.

For each corpus size: builds a SPLADE index (``sparse_vector``, synthetic vectors grown from
real ones, see ``scale_synthetic.py``) and a BM25 index (texts of matching length and
vocabulary) on one node, 1 shard, 0 replicas; times the engine-side bulk load (pre-built
NDJSON, 2 client threads); reads index size on disk and segment count; then runs every real
encoded test query through every query form and BM25, round-robin (each query goes through
all forms before the next query, the order's starting form rotated by one per query, after
one untimed pass of every form), and records client-side latency, the engine's
``took``, and the top 100. Recall@100 is against the exact query's top 100. The real SciFact
corpus (its real vectors) is the first "size", where nDCG@10 is measured too.

    python benchmarks/scale_encode.py --data ../shared/datasets/scifact --out runs/scale/real
    python benchmarks/scale_curve.py --es-url $ES_URL --data ../shared/datasets/scifact \
        --real runs/scale/real --work runs/scale/data --sizes 10000,100000,1000000 \
        --heap 4g --out benchmarks/results/scale

Writes ``scale.json``, ``scale.md``, ``scale_latency.png`` and ``scale_distributions.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scale_corpus import CHUNK, RealCorpus, splade_lines, write_corpus
from scale_policies import ES_POLICIES, PACKAGE_POLICIES, QueryForms, bm25_body, share_of
from scale_report import write_report
from scale_synthetic import Recipe

from splade_es.cluster.connection import Cluster, ClusterConfig, ClusterError, connect
from splade_es.data.beir import load_qrels, load_queries
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.encoding.features import SparseVector
from splade_es.evaluation.metrics import retrieval_metrics

FIELD = "splade"
BULK_DOCS = 1000
FORMS = ("exact", *PACKAGE_POLICIES, *ES_POLICIES)


def create(cluster: Cluster, index: str, properties: dict[str, Any]) -> None:
    try:
        cluster.request("DELETE", f"/{index}")
    except ClusterError as error:  # absent is fine
        if error.status != 404:
            raise
    settings = {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"}
    body = {"settings": settings, "mappings": {"properties": properties}}
    cluster.request("PUT", f"/{index}", body=body)


def bulk_load(cluster: Cluster, index: str, files: Sequence[Path], threads: int = 2) -> float:
    """Send the NDJSON files, ``BULK_DOCS`` documents a request, with ``threads`` clients;
    seconds from the first request to the end of the refresh."""

    def send(lines: list[bytes]) -> int:
        answer = cluster.client.bulk(index=index, body=b"\n".join(lines) + b"\n")
        body = getattr(answer, "body", answer)
        if body.get("errors"):
            failed = [i for i in body["items"] if i["index"].get("error")][:3]
            raise RuntimeError(f"bulk into {index} failed: {failed}")
        return len(body["items"])

    def requests() -> Iterator[list[bytes]]:
        for path in files:
            lines = path.read_bytes().splitlines()
            for start in range(0, len(lines), 2 * BULK_DOCS):
                yield lines[start : start + 2 * BULK_DOCS]

    started = last = time.perf_counter()
    loaded = 0
    with ThreadPoolExecutor(threads) as pool:
        pending: deque[Future[int]] = deque()
        for lines in requests():  # at most 2 x threads requests in memory (map reads all)
            pending.append(pool.submit(send, lines))
            if len(pending) >= 2 * threads:
                loaded += pending.popleft().result()
            if time.perf_counter() - last > 10:
                last = time.perf_counter()
                print(f"  {index}: {loaded} documents ({loaded / (last - started):.0f}/s)")
        loaded += sum(future.result() for future in pending)
    cluster.request("POST", f"/{index}/_refresh")
    seconds = time.perf_counter() - started
    print(f"  loaded {loaded} documents into {index} in {seconds:.0f}s", flush=True)
    return seconds


def index_stats(cluster: Cluster, index: str) -> dict[str, Any]:
    stats = cluster.request("GET", f"/{index}/_stats/store,segments,docs")["_all"]["primaries"]
    return {
        "bytes": stats["store"]["size_in_bytes"],
        "segments": stats["segments"]["count"],
        "documents": stats["docs"]["count"],
    }


def timed(cluster: Cluster, index: str, body: dict[str, Any]) -> tuple[float, int, list[str]]:
    started = time.perf_counter()
    answer = cluster.request("POST", f"/{index}/_search", body=body)
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, int(answer["took"]), [h["_id"] for h in answer["hits"]["hits"]]


def measure(
    cluster: Cluster,
    indices: tuple[str, str],
    forms: QueryForms,
    queries: list[tuple[str, SparseVector, str]],
) -> dict[str, dict[str, Any]]:
    """Latency, took and top 100 of every form (BM25 included) for every query: one untimed
    pass of every form, then the timed pass. Each query runs every form back to back, the
    order rotated by one form per query: each form runs first (cold page cache) equally often,
    but the cycle is the same, so a form follows the same one in all but one query in 20."""
    splade, bm25 = indices
    names = (*FORMS, "bm25")

    def run(form: str, vector: SparseVector, text: str) -> tuple[float, int, list[str]]:
        if form == "bm25":
            return timed(cluster, bm25, bm25_body(text))
        return timed(cluster, splade, forms.body(form, vector))

    for number, (_, vector, text) in enumerate(queries):  # warm-up pass, every form
        for form in rotated(names, number):
            run(form, vector, text)
    runs: dict[str, dict[str, Any]] = {f: {"ms": [], "took": [], "hits": {}} for f in names}
    last = time.monotonic()
    for number, (name, vector, text) in enumerate(queries):
        for form in rotated(names, number):
            ms, took, hits = run(form, vector, text)
            runs[form]["ms"].append(ms)
            runs[form]["took"].append(took)
            runs[form]["hits"][name] = hits
        if time.monotonic() - last > 5:
            last = time.monotonic()
            print(f"  query {number + 1}/{len(queries)}", flush=True)
    return runs


def rotated(names: Sequence[str], number: int) -> list[str]:
    """``names`` starting at position ``number`` (modulo its length), wrapping around."""
    start = number % len(names)
    return [*names[start:], *names[:start]]


def summary(
    runs: dict[str, dict[str, Any]], qrels: dict[str, dict[str, int]] | None
) -> dict[str, dict[str, float]]:
    """p50/p99 latency, recall@100 against exact, nDCG@10 (with ``qrels``) per form."""
    exact = runs["exact"]["hits"]
    out = {}
    for form, run in runs.items():
        row = {
            "p50_ms": float(np.percentile(run["ms"], 50)),
            "p99_ms": float(np.percentile(run["ms"], 99)),
            "took_p50_ms": float(np.percentile(run["took"], 50)),
        }
        if form != "bm25":
            recalls = [
                len(set(hits) & set(exact[q])) / max(len(exact[q]), 1)
                for q, hits in run["hits"].items()
            ]
            row["recall@100"] = float(np.mean(recalls))
        if qrels is not None:
            ranked = {q: {d: -float(r) for r, d in enumerate(h)} for q, h in run["hits"].items()}
            row["ndcg@10"] = retrieval_metrics(qrels, ranked)["ndcg@10"]
        out[form] = row
    return out


def run_size(
    cluster: Cluster,
    label: str,
    splade_files: Sequence[Path],
    bm25_files: Sequence[Path],
    forms: QueryForms,
    queries: list[tuple[str, SparseVector, str]],
    qrels: dict[str, dict[str, int]] | None,
) -> dict[str, Any]:
    splade, bm25 = f"scale-splade-{label}", f"scale-bm25-{label}"
    create(cluster, splade, {FIELD: {"type": "sparse_vector"}})
    create(cluster, bm25, {"text": {"type": "text"}})
    load = {"splade_s": bulk_load(cluster, splade, splade_files)}
    load["bm25_s"] = bulk_load(cluster, bm25, bm25_files)
    stats = {"splade": index_stats(cluster, splade), "bm25": index_stats(cluster, bm25)}
    runs = measure(cluster, (splade, bm25), forms, queries)
    for index in (splade, bm25):
        cluster.request("DELETE", f"/{index}")
    documents = stats["splade"]["documents"]
    return {
        "label": label,
        "documents": documents,
        "load": load,
        "docs_per_s": {k[:-2]: documents / v for k, v in load.items()},
        "index": stats,
        "forms": summary(runs, qrels),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--es-url", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--heap", required=True, help="The node's heap, as started (stated).")
    parser.add_argument("--model", default="splade-tiny")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--report-only", action="store_true", help="Redraw the tables and plots of --out."
    )
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if any(size % CHUNK for size in sizes):
        raise SystemExit(f"--sizes must be multiples of {CHUNK}: {sizes}")
    real = RealCorpus.load(args.real)
    if args.report_only:
        results = json.loads((args.out / "scale.json").read_text())
        write_report(results, real, np.load(args.work / "stats.npz"), sizes, args.out)
        return
    keys = SpladeEncoder(EncoderConfig(model=args.model, device="cpu")).vocabulary.keys
    recipe = Recipe()
    write_corpus(real, keys, sizes, args.work, recipe, FIELD)
    cluster = connect(ClusterConfig(url=args.es_url, engine="elasticsearch"))
    qrels = load_qrels(args.data, "test")
    queries_text = load_queries(args.data)
    queries = [
        (name, SparseVector(*real.queries.vector(i)), queries_text[name])
        for i, name in enumerate(real.query_names)
        if name in qrels
    ]
    results = {"machine": machine(args), "recipe": recipe.__dict__, "sizes": []}
    results["sizes"].append(scifact_size(cluster, real, keys, queries, qrels, args.work))
    stats = np.load(args.work / "stats.npz")
    for size in sizes:
        print(f"size {size}", flush=True)
        files = sorted(args.work.glob("splade-*.ndjson"))[: size // CHUNK]
        texts = sorted(args.work.glob("bm25-*.ndjson"))[: size // CHUNK]
        forms = QueryForms(FIELD, _keys_of(keys), share_of(stats[f"df_{size}"], size))
        results["sizes"].append(run_size(cluster, str(size), files, texts, forms, queries, None))
        (args.out / "scale.json").parent.mkdir(parents=True, exist_ok=True)
        (args.out / "scale.json").write_text(json.dumps(results, indent=2))
    write_report(results, real, stats, sizes, args.out)


def scifact_size(
    cluster: Cluster,
    real: RealCorpus,
    keys: Sequence[str],
    queries: list[tuple[str, SparseVector, str]],
    qrels: dict[str, dict[str, int]],
    work: Path,
) -> dict[str, Any]:
    """The real corpus, real vectors and texts under their real ids (nDCG@10 measured)."""
    splade, bm25 = work / "scifact-splade.ndjson", work / "scifact-bm25.ndjson"
    lines = splade_lines(real.documents, keys, 0, FIELD).split(b"\n")
    actions = bytearray()
    for number, name in enumerate(real.doc_names):
        actions += json.dumps({"index": {"_id": name}}).encode() + b"\n"
        actions += lines[2 * number + 1] + b"\n"
    splade.write_bytes(bytes(actions))
    texts = bytearray()
    for name, words in zip(real.doc_names, real.texts, strict=True):
        texts += json.dumps({"index": {"_id": name}}).encode() + b"\n"
        texts += json.dumps({"text": " ".join(words)}).encode() + b"\n"
    bm25.write_bytes(bytes(texts))
    df = real.documents.document_frequencies(len(keys))
    forms = QueryForms(FIELD, _keys_of(keys), share_of(df, len(real.documents)))
    print("size scifact (real vectors)", flush=True)
    return run_size(cluster, "scifact", [splade], [bm25], forms, queries, qrels)


def _keys_of(keys: Sequence[str]) -> Any:
    def features(vector: SparseVector) -> dict[str, float]:
        return {keys[int(t)]: float(w) for t, w in zip(vector.ids, vector.weights, strict=True)}

    return features


def machine(args: argparse.Namespace) -> dict[str, Any]:
    import os

    return {
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "engine": "elasticsearch",
        "heap": args.heap,
        "model": args.model,
    }


if __name__ == "__main__":
    main()
