"""Distributed encoding: 1 and 2 Ray workers against the single-process path, same machine.

Encodes and indexes the same N real documents (SciFact with ``--data``, else the Python
standard library's docstrings the package ships) with the same model through
``build_index``: once in this process, then with ``ray=RayConfig(workers=W)`` for each
``--workers`` value, each into a fresh index. Ray is started once, before the Ray runs (its
start is reported on its own); each Ray run's time includes starting its actors and
loading the model in each. Writes ``ray_encoding.{json,md}``: wall seconds and docs/s per
run, the ratio to the single process, peak memory of this process and its Ray processes,
CPU count and model.

    python benchmarks/ray_encoding.py --docs 600 --out benchmarks/results/ray
    python benchmarks/ray_encoding.py --data ../shared/datasets/scifact --es-url $URL ...

Without ``--es-url`` a private Elasticsearch node is started for the run and stopped after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import re
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from splade_es.cluster.connection import Cluster, ClusterConfig, connect
from splade_es.data.corpus import from_records
from splade_es.data.stdlib_corpus import stdlib_corpus
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.engines import NodeConfig, start_node, stop_node
from splade_es.indexing.build import BuildConfig, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.indexing.distributed import RayConfig


def load_documents(data: Path | None, count: int) -> list[dict[str, Any]]:
    """The first ``count`` SciFact documents of ``data``, or stdlib docstrings."""
    if data is None:
        return stdlib_corpus(limit=count)
    with (data / "corpus.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line) for line, _ in zip(lines, range(count), strict=False)]


@contextlib.contextmanager
def cluster_at(url: str | None) -> Iterator[ClusterConfig]:
    """``url``, or a private local node for the run (stopped at the end)."""
    if url is not None:
        yield ClusterConfig(url=url)
        return
    state = Path(tempfile.mkdtemp(prefix="ray-bench-")) / "elasticsearch.json"
    cache = Path(os.environ.get("SPLADE_ES_CACHE_DIR", Path.home() / ".cache" / "splade-es"))
    info = start_node(
        NodeConfig(engine="elasticsearch", state_file=state, cache_dir=cache, heap="1g"),
        os.environ,
    )
    try:
        yield ClusterConfig(url=info.url, engine="elasticsearch")
    finally:
        stop_node(state)


class PeakMemory:
    """Peak resident memory of this process plus its Ray processes, sampled every 0.2 s."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_mb = max(self.peak_mb, tree_rss_mb(os.getpid()))


def tree_rss_mb(root: int) -> float:
    """Resident MB of ``root`` and its descendants, Java (the search node) left out."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
    tree, frontier = {root}, {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - tree
        tree |= frontier
    total = 0
    for pid in tree:
        with contextlib.suppress(OSError, ValueError):
            if b"java" in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            fields = Path(f"/proc/{pid}/statm").read_text().split()
            total += int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    return total / 2**20


def run(
    cluster: Cluster,
    records: Sequence[dict[str, Any]],
    encoder: SpladeEncoder,
    label: str,
    ray: RayConfig | None,
) -> dict[str, Any]:
    """Build one fresh index; its timings (the index is deleted after)."""
    index = f"ray-bench-{re.sub(r'[^a-z0-9]+', '-', label)}-{int(time.time())}"
    config = BuildConfig(BulkConfig(index=index, progress=False))
    started = time.perf_counter()
    with PeakMemory() as memory:
        result = build_index(cluster, from_records(records), encoder, config, ray=ray)
    seconds = time.perf_counter() - started
    cluster.request("DELETE", f"/{index}")
    assert result.report is not None and result.documents == len(records), result
    return {
        "run": label,
        "workers": ray.workers if ray is not None else 0,
        "documents": result.documents,
        "seconds": round(seconds, 2),
        "docs_per_s": round(len(records) / seconds, 1),
        "peak_rss_mb": round(memory.peak_mb),
    }


def markdown(rows: Sequence[dict[str, Any]], caption: str) -> str:
    lines = [
        caption,
        "",
        "| run | docs | seconds | docs/s | vs one process | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base = rows[0]["docs_per_s"]
    for row in rows:
        lines.append(
            f"| {row['run']} | {row['documents']} | {row['seconds']:.1f} | "
            f"{row['docs_per_s']:.1f} | {row['docs_per_s'] / base:.2f}x | {row['peak_rss_mb']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, help="A BEIR folder (corpus.jsonl); default: stdlib")
    parser.add_argument("--docs", type=int, default=600)
    parser.add_argument("--model", default="splade-tiny")
    parser.add_argument("--workers", default="1,2", help="comma-separated pool sizes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ray-address", help="a Ray cluster (default: start a local one)")
    parser.add_argument("--es-url", help="default: a private local node for the run")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ray"))
    args = parser.parse_args()
    import ray

    records = load_documents(args.data, args.docs)
    encoder = SpladeEncoder(EncoderConfig(model=args.model))
    with cluster_at(args.es_url) as cluster_config:
        cluster = connect(cluster_config)
        rows = [run(cluster, records, encoder, "one process", None)]
        started = time.perf_counter()
        ray.init(address=args.ray_address, logging_level=logging.WARNING)
        ray_start_s = time.perf_counter() - started
        resources = ray.cluster_resources()
        for workers in (int(w) for w in args.workers.split(",")):
            pool = RayConfig(workers=workers, batch_size=args.batch_size, cluster=cluster_config)
            rows.append(run(cluster, records, encoder, f"ray {workers} worker(s)", pool))
        ray.shutdown()
        engine = f"{cluster.engine} {cluster.version}"
        cluster.close()
    source = args.data.name if args.data else "stdlib docstrings"
    caption = (
        f"{len(records)} {source} documents, {args.model} on {encoder.device}, through "
        f"{engine}; {os.cpu_count()} CPUs ({platform.machine()}), Ray {ray.__version__} "
        f"({resources.get('CPU', 0):.0f} CPUs, {resources.get('GPU', 0):.0f} GPUs; started in "
        f"{ray_start_s:.1f} s, not counted), batches of {args.batch_size}; one process runs "
        f"{torch.get_num_threads()} torch threads, each Ray worker 1. Ray runs include "
        "starting the actors and loading the model in each."
    )
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"caption": caption, "rows": rows, "ray_start_s": round(ray_start_s, 2)}
    (args.out / "ray_encoding.json").write_text(json.dumps(results, indent=2))
    (args.out / "ray_encoding.md").write_text(markdown(rows, caption))
    print(markdown(rows, caption))


if __name__ == "__main__":
    main()
