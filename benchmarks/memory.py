"""Peak memory of the bulk pipeline vs corpus size: the corpus is streamed, never loaded.

Each size runs in a fresh Python process that streams a generated JSONL corpus from disk
through ``read_corpus`` -> ``index_documents`` (splade-tiny, CPU) into a real node and reports
its own peak RSS. The 0-document run is the baseline (model loaded, client connected,
an empty file read), so the difference is what the pipeline itself holds.

Usage:
    python benchmarks/memory.py --sizes 0,2000,20000 --out benchmarks/results/memory

Writes ``memory.json``, ``memory.md`` and ``memory.png`` into ``--out``. Starts a local
Elasticsearch node unless ``--es-url`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = [
    *[
        "protein",
        "cell",
        "gene",
        "expression",
        "tumour",
        "patient",
        "clinical",
        "trial",
        "dose",
        "response",
        "cohort",
    ],
    *[
        "risk",
        "vaccine",
        "immune",
        "receptor",
        "pathway",
        "signal",
        "membrane",
        "enzyme",
        "mutation",
        "sequence",
    ],
    *[
        "genome",
        "bacteria",
        "infection",
        "antibody",
        "therapy",
        "outcome",
        "placebo",
        "randomised",
        "mortality",
    ],
]


def write_corpus(path: Path, size: int) -> None:
    """``size`` documents of ~80 words each (deterministic)."""
    with path.open("w", encoding="utf-8") as handle:
        for i in range(size):
            text = " ".join(WORDS[(i * 7 + j * 13) % len(WORDS)] for j in range(80))
            handle.write(json.dumps({"_id": f"m{i}", "text": f"document {i}: {text}"}) + "\n")


def measure_one(url: str, corpus: Path, index: str, chunk_docs: int) -> dict[str, float]:
    """Index ``corpus`` in this process; return its figures (run by the parent per size)."""
    from splade_es.cluster.connection import ClusterConfig, connect
    from splade_es.data.readers import read_corpus
    from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
    from splade_es.indexing.build import BuildConfig, build_index
    from splade_es.indexing.bulk import BulkConfig

    cluster = connect(ClusterConfig(url=url))
    try:
        encoder = SpladeEncoder(EncoderConfig(model="splade-tiny", device="cpu"))
        bulk = BulkConfig(index=index, chunk_docs=chunk_docs, progress=False)
        started = time.perf_counter()
        built = build_index(cluster, read_corpus(corpus), encoder, BuildConfig(bulk, replicas=0))
        seconds = time.perf_counter() - started
        cluster.request("DELETE", f"/{index}")  # created above by this run
    finally:
        cluster.close()
    report = built.report
    if report is None:
        raise RuntimeError(f"{index} was reused, not written: the benchmark needs a new index")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"indexed": report.indexed, "seconds": seconds, "peak_rss_mb": peak_kib / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="0,2000,20000")
    parser.add_argument("--chunk-docs", type=int, default=500)
    parser.add_argument("--es-url")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/memory"))
    parser.add_argument(
        "--one", nargs=3, metavar=("URL", "CORPUS", "INDEX"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one:
        url, corpus, index = args.one
        print(json.dumps(measure_one(url, Path(corpus), index, args.chunk_docs)))
        return

    from splade_es.indexing.bulk import BulkConfig

    defaults = BulkConfig(index="x", chunk_docs=args.chunk_docs)
    window = defaults.encode_batch * (defaults.queue_batches + 2) + defaults.chunk_docs
    sizes = [int(s) for s in args.sizes.split(",")]
    node_state = None
    url = args.es_url
    if url is None:
        from splade_es.engines import NodeConfig, start_node

        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "splade-es"
        node_state = Path(tempfile.mkdtemp()) / "node.json"
        url = start_node(
            NodeConfig(engine="elasticsearch", state_file=node_state, cache_dir=cache, heap="1g"),
            os.environ,
        ).url
    rows = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for size in sizes:
                corpus = Path(folder) / f"corpus-{size}.jsonl"
                write_corpus(corpus, size)
                index = f"bench-memory-{size}-{os.getpid()}"
                command = [sys.executable, __file__, "--chunk-docs", str(args.chunk_docs)]
                answer = subprocess.run(
                    [*command, "--one", url, str(corpus), index],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                figures = json.loads(answer.stdout.strip().splitlines()[-1])
                rows.append({"documents": size, **figures})
                print(rows[-1], flush=True)
    finally:
        if node_state is not None:
            from splade_es.engines import stop_node

            stop_node(node_state)
            shutil.rmtree(node_state.parent, ignore_errors=True)
    base = rows[0]["peak_rss_mb"]
    for row in rows:
        row["over_baseline_mb"] = row["peak_rss_mb"] - base
        row["corpus_over_window"] = row["documents"] / window
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "window_documents": window,
        "chunk_docs": args.chunk_docs,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"Batch window: {window} documents (encode_batch x (queue_batches + 2) + chunk_docs). "
        f"{result['machine']}.",
        "",
        "| documents | x window | peak RSS (MB) | over the 0-doc baseline (MB) | docs/s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        speed = row["indexed"] / row["seconds"] if row["seconds"] > 0 and row["indexed"] else 0
        lines.append(
            f"| {row['documents']} | {row['corpus_over_window']:.1f} | "
            f"{row['peak_rss_mb']:.0f} | {row['over_baseline_mb']:+.0f} | {speed:.0f} |"
        )
    (args.out / "memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot([r["documents"] for r in rows], [r["peak_rss_mb"] for r in rows], marker="o")
    axis.axvline(window, linestyle="--", color="grey", label=f"batch window ({window} docs)")
    axis.set_xlabel("documents indexed (streamed from a JSONL file)")
    axis.set_ylabel("peak RSS of the process (MB)")
    axis.set_ylim(0, max(r["peak_rss_mb"] for r in rows) * 1.2)
    axis.set_title("Bulk pipeline memory vs corpus size (splade-tiny, CPU)")
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(args.out / "memory.png", dpi=120)


if __name__ == "__main__":
    main()
