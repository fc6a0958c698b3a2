"""Load: N client threads running SPLADE search + ColBERT rerank against a real node.

Indexes a corpus with SPLADE terms and ColBERT token embeddings (or reuses the index when it
already holds that many documents), warms up with every query once (single-threaded: these are
also the reference answers), then runs the clients for a fixed time, every thread sharing one
Searcher and one Reranker, each looping search + rerank over a fixed query list. Reports
throughput, p50/p95/p99 latency (whole request, search, rerank), errors by type, and answers
that differ from the single-threaded ones; writes markdown, JSON and a latency CDF to --out.
Without --es-url it starts a local node with the package launcher and stops it at the end.

Usage (the target: 8 clients x 60 s):
    python benchmarks/load.py --engine elasticsearch --clients 8 --seconds 60
    python benchmarks/load.py --es-url http://127.0.0.1:9200 --corpus ../shared/datasets/scifact
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from load_generator import (
    LoadConfig,
    LoadSummary,
    Response,
    markdown,
    run_load,
    search_rerank_request,
    summarize,
)

from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
from splade_es.cluster.connection import Cluster, ClusterConfig, connect
from splade_es.data.beir import load_queries
from splade_es.data.corpus import Document, Rejected, from_records
from splade_es.data.readers import read_beir
from splade_es.data.stdlib_corpus import stdlib_corpus
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.engines import NodeConfig, start_node, stop_node
from splade_es.indexing.build import BuildConfig, ColbertIndexing, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.search.rerank import open_reranker
from splade_es.search.searcher import SearchConfig, Searcher

STDLIB_QUERIES = (
    "parse command line arguments",
    "read a compressed file",
    "current date and time in a time zone",
    "run a shell command and capture its output",
    "cryptographically secure random token",
    "sort a list in place with a key function",
    "match a string against a regular expression",
    "serialize an object to JSON",
    "copy a directory tree",
    "compute the difference between two sequences",
    "a thread pool that runs functions asynchronously",
    "decode base64 data",
    "open a TCP connection",
    "format a decimal number with rounding",
    "temporary file that is deleted on close",
    "hash a password with a salt",
)


def corpus_and_queries(
    corpus: str, max_docs: int, max_queries: int
) -> tuple[list[Document | Rejected], list[str]]:
    """``stdlib`` (the quickstart's corpus, bundled) or a BEIR folder (corpus + queries)."""
    if corpus == "stdlib":
        return list(from_records(stdlib_corpus(max_docs))), list(STDLIB_QUERIES)[:max_queries]
    folder = Path(corpus)
    documents = list(itertools.islice(read_beir(folder), max_docs))
    queries = sorted(load_queries(folder).items())[:max_queries]
    return documents, [text for _, text in queries]


def ensure_index(
    cluster: Cluster,
    index: str,
    documents: list[Document | Rejected],
    splade: SpladeEncoder,
    colbert: ColbertEncoder,
) -> str:
    """Index ``documents`` with SPLADE + ColBERT fields unless ``index`` already holds them."""
    wanted = sum(isinstance(d, Document) for d in documents)
    config = BuildConfig(BulkConfig(index=index, progress=False), expected_documents=wanted)
    result = build_index(
        cluster, documents, splade, config, ColbertIndexing(colbert), total=len(documents)
    )
    if result.report is None:
        return f"reused {index} ({wanted} documents)"
    report = result.report
    return f"indexed {report.indexed} documents into {index} in {report.seconds:.0f} s"


def load_average() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        one, five, fifteen = os.getloadavg()
        return f"load average: {one:.2f}, {five:.2f}, {fifteen:.2f}"


def plot(latencies: dict[str, list[float]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, values in latencies.items():
        if not values:
            continue
        ordered = np.sort(values)
        right.plot(ordered, np.arange(1, len(ordered) + 1) / len(ordered), label=name)
        left.hist(values, bins=50, alpha=0.6, label=name)
    left.set_xlabel("latency (ms)")
    left.set_ylabel("requests")
    left.set_title("Latency histogram")
    left.legend()
    right.set_xlabel("latency (ms)")
    right.set_ylabel("fraction of requests")
    right.set_title("Latency CDF")
    for q in (0.5, 0.95, 0.99):
        right.axhline(q, color="grey", linewidth=0.5, linestyle=":")
    right.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def mismatches(samples: list[Any], reference: dict[str, Response]) -> int:
    """Successful answers whose ids or scores differ from the single-threaded ones."""
    count = 0
    for sample in samples:
        got, want = sample.response, reference[sample.query]
        if got is None:
            continue
        count += got.ids != want.ids or any(
            abs(a - b) > 1e-4 * max(1.0, abs(b))
            for a, b in zip(got.scores, want.scores, strict=True)
        )
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--engine", default="elasticsearch", choices=["elasticsearch", "opensearch"]
    )
    parser.add_argument("--es-url", help="Use this cluster instead of starting a local node.")
    parser.add_argument("--clients", type=int, default=8, help="Concurrent client threads.")
    parser.add_argument("--seconds", type=float, default=60.0, help="How long the clients run.")
    parser.add_argument("-k", type=int, default=10, help="Hits returned per request.")
    parser.add_argument(
        "--rerank-top-k", type=int, default=100, help="First-stage hits rescored by MaxSim."
    )
    parser.add_argument(
        "--corpus",
        default="stdlib",
        help="'stdlib' (the quickstart's Python-docs corpus, bundled) or a BEIR folder.",
    )
    parser.add_argument("--max-docs", type=int, default=1000)
    parser.add_argument("--max-queries", type=int, default=16)
    parser.add_argument("--index", help="Index to build or reuse (default: from the corpus).")
    parser.add_argument(
        "--torch-threads",
        type=int,
        help="torch intra-op threads for this process (default: torch's, one per core).",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/load"))
    args = parser.parse_args()
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)

    documents, queries = corpus_and_queries(args.corpus, args.max_docs, args.max_queries)
    corpus_name = "stdlib" if args.corpus == "stdlib" else Path(args.corpus).name
    index = args.index or f"splade-es-load-{corpus_name}-{len(documents)}"
    splade = SpladeEncoder(EncoderConfig(model="splade-tiny", device="cpu"))
    colbert = ColbertEncoder(ColbertConfig(device="cpu"))
    state = Path(tempfile.mkdtemp(prefix="splade-es-load-")) / "node.json"
    if args.es_url:
        cluster = connect(ClusterConfig(url=args.es_url))
    else:
        cache = Path(os.environ.get("SPLADE_ES_CACHE_DIR", Path.home() / ".cache" / "splade-es"))
        info = start_node(
            NodeConfig(engine=args.engine, state_file=state, cache_dir=cache, heap="1g"),
            os.environ,
        )
        cluster = connect(ClusterConfig(url=info.url, engine=args.engine))
    try:
        print(ensure_index(cluster, index, documents, splade, colbert), flush=True)
        searcher = Searcher(cluster, splade, SearchConfig(index=index, include_embeddings=True))
        reranker = open_reranker(cluster, index, colbert)
        request = search_rerank_request(searcher, reranker, args.k, args.rerank_top_k)
        reference = {query: request(query) for query in queries}  # warm-up + reference answers
        before = load_average()
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        run = run_load(request, queries, LoadConfig(clients=args.clients, seconds=args.seconds))
        after = load_average()
        summary: LoadSummary = summarize(run)
        result = {
            "command": "python benchmarks/load.py "
            + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v),
            "started": started,
            "engine": f"{cluster.engine} {cluster.version}",
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "corpus": corpus_name,
            "documents": sum(isinstance(d, Document) for d in documents),
            "queries": len(queries),
            "k": args.k,
            "rerank_top_k": args.rerank_top_k,
            "uptime_before": before,
            "uptime_after": after,
            "answers_differing_from_single_threaded": mismatches(run.samples, reference),
            "summary": summary.as_dict(),
        }
    finally:
        cluster.close()
        if not args.es_url:
            stop_node(state)
        shutil.rmtree(state.parent, ignore_errors=True)
    report = describe(result, summary)
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"{result['engine'].split()[0]}-{args.clients}x{args.seconds:g}s"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(report)
    latencies = {
        "search + rerank": [s.latency_ms for s in run.samples if s.response],
        "search": [s.response.phases_ms["search"] for s in run.samples if s.response],
        "rerank": [s.response.phases_ms["rerank"] for s in run.samples if s.response],
    }
    title = f"{result['engine']}: {args.clients} clients x {args.seconds:g} s"
    plot(latencies, title, args.out / f"{name}.png")


def describe(result: dict[str, Any], summary: LoadSummary) -> str:
    lines = [
        f"### {result['engine']}, {summary.clients} clients x {summary.seconds:g} s",
        "",
        f"`{result['command']}`",
        "",
        f"{result['machine']}, torch {result['torch']} with {result['torch_threads']} "
        f"intra-op threads; {result['corpus']} corpus ({result['documents']} documents), "
        f"{result['queries']} queries cycled, top {result['rerank_top_k']} reranked, "
        f"top {result['k']} returned. Started {result['started']}.",
        "",
        f"Load before: `{result['uptime_before']}`; after: `{result['uptime_after']}`.",
        "",
        markdown(summary).rstrip(),
        "",
        f"Answers differing from the single-threaded ones: "
        f"{result['answers_differing_from_single_threaded']}. "
        f"Successful requests per client: {summary.per_client}.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
