"""Peak memory of the bulk pipeline vs corpus size, and what the memory is.

Each size runs in a fresh Python process that streams a generated JSONL corpus from disk
through ``read_corpus`` -> ``index_documents`` (splade-tiny, CPU) into a real node and reports
its own peak RSS. The 0-document run is the baseline (model loaded, client connected,
an empty file read), so the difference is what the pipeline itself holds.

To tell what grows, each process also records (all cheap): RSS after the model and client are
loaded; RSS sampled four times a second against the number of documents read so far (so the
growth within the first batch window can be told from growth after it); at the end, what
glibc's malloc holds (bytes taken from the system, the part of them free but kept, arenas)
and the Python heap (allocated blocks, gc-tracked objects; with ``--tracemalloc`` also the
traced peak in bytes, which slows Python code down).

Usage:
    python benchmarks/memory.py --sizes 0,2000,20000 --out benchmarks/results/memory
    python benchmarks/memory.py --sizes 0,2000,20000,60000 ...   # a third, larger point

Writes ``memory.json``, ``memory.md`` and ``memory.png`` into ``--out``. Starts a local
Elasticsearch node unless ``--es-url`` is given.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

WORDS = [
    "protein", "cell", "gene", "expression", "tumour", "patient", "clinical", "trial",
    "dose", "response", "cohort", "risk", "vaccine", "immune", "receptor", "pathway",
    "signal", "membrane", "enzyme", "mutation", "sequence", "genome", "bacteria", "infection",
    "antibody", "therapy", "outcome", "placebo", "randomised", "mortality",
]  # fmt: skip


def write_corpus(path: Path, size: int) -> None:
    """``size`` documents of ~80 words each (deterministic)."""
    with path.open("w", encoding="utf-8") as handle:
        for i in range(size):
            text = " ".join(WORDS[(i * 7 + j * 13) % len(WORDS)] for j in range(80))
            handle.write(json.dumps({"_id": f"m{i}", "text": f"document {i}: {text}"}) + "\n")


def rss_mb() -> float:
    """This process's resident set size now (``VmRSS``), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmRSS line (not Linux?)")


def malloc_state() -> dict[str, float] | None:
    """What glibc's malloc holds, over all arenas (``malloc_info``), in MB; None elsewhere.

    ``system_mb``: taken from the system by the arenas; ``free_kept_mb``: the part of it that
    is free (freed by the program, kept by malloc); ``mmap_mb``: large blocks mapped directly.
    """
    if platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    with tempfile.NamedTemporaryFile(suffix=".xml") as handle:
        stream = libc.fopen(handle.name.encode(), b"w")
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        root = ElementTree.parse(handle.name).getroot()

    def total(tag: str, kind: str) -> float:
        node = root.find(f"./{tag}[@type='{kind}']")  # the top-level totals, all arenas
        return int(node.get("size", 0)) / 2**20 if node is not None else 0.0

    return {
        "arenas": len(root.findall("./heap")),
        "system_mb": total("system", "current"),
        "free_kept_mb": total("total", "fast") + total("total", "rest"),
        "mmap_mb": total("total", "mmap"),
    }


class RssSampler(threading.Thread):
    """Samples ``(documents read so far, RSS MB)`` every ``interval`` seconds until stopped."""

    def __init__(self, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.read = 0
        self.samples: list[tuple[int, float]] = []
        self._stop_event = threading.Event()

    def counted(self, items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            self.read += 1
            yield item

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.samples.append((self.read, rss_mb()))

    def stop(self) -> list[tuple[int, float]]:
        self._stop_event.set()
        self.join()
        self.samples.append((self.read, rss_mb()))
        return self.samples


def python_heap() -> dict[str, int]:
    return {"allocated_blocks": sys.getallocatedblocks(), "gc_objects": len(gc.get_objects())}


def measure_one(url: str, corpus: Path, index: str, chunk_docs: int, trace: bool) -> dict[str, Any]:
    """Index ``corpus`` in this process; return its figures (run by the parent per size)."""
    from splade_es.cluster.connection import ClusterConfig, connect
    from splade_es.data.readers import read_corpus
    from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
    from splade_es.indexing.build import BuildConfig, build_index
    from splade_es.indexing.bulk import BulkConfig

    figures: dict[str, Any] = {"rss_after_imports_mb": rss_mb()}
    cluster = connect(ClusterConfig(url=url))
    try:
        encoder = SpladeEncoder(EncoderConfig(model="splade-tiny", device="cpu"))
        figures["rss_after_load_mb"] = rss_mb()
        heap_before = python_heap()
        bulk = BulkConfig(index=index, chunk_docs=chunk_docs, progress=False)
        sampler = RssSampler()
        if trace:
            tracemalloc.start()
        sampler.start()
        started = time.perf_counter()
        built = build_index(
            cluster, sampler.counted(read_corpus(corpus)), encoder, BuildConfig(bulk, replicas=0)
        )
        seconds = time.perf_counter() - started
        figures["samples"] = sampler.stop()
        if trace:
            figures["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        cluster.request("DELETE", f"/{index}")  # created above by this run
    finally:
        cluster.close()
    report = built.report
    if report is None:
        raise RuntimeError(f"{index} was reused, not written: the benchmark needs a new index")
    heap_after = python_heap()
    figures.update(
        indexed=report.indexed,
        seconds=seconds,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        rss_end_mb=rss_mb(),
        threads_end=threading.active_count(),
        python_blocks_growth=heap_after["allocated_blocks"] - heap_before["allocated_blocks"],
        gc_objects_growth=heap_after["gc_objects"] - heap_before["gc_objects"],
        malloc_end=malloc_state(),
    )
    return figures


def trajectory(row: dict[str, Any], window: int) -> dict[str, Any]:
    """Where the RSS grew: up to the end of the first window, and after it (with a slope)."""
    samples = row.pop("samples")
    load = row["rss_after_load_mb"]
    inside = [rss for read, rss in samples if read <= window] or [load]
    after = [(read, rss) for read, rss in samples if read > window]
    out: dict[str, Any] = {"max_rss_first_window_mb": max(inside)}
    if len(after) >= 2:
        reads = [r for r, _ in after]
        rss = [m for _, m in after]
        out["growth_after_window_mb"] = max(rss) - max(inside)
        slope = statistics.linear_regression(reads, rss).slope if len(set(reads)) > 1 else 0.0
        out["slope_after_window_mb_per_1000_docs"] = slope * 1000
    step = max(1, len(samples) // 200)
    out["rss_by_documents_read"] = samples[::step]
    return out


def run_sizes(args: argparse.Namespace, url: str, window: int) -> list[dict[str, Any]]:
    """One fresh process per corpus size; its figures, with the RSS trajectory summarised."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in [int(s) for s in args.sizes.split(",")]:
            corpus = Path(folder) / f"corpus-{size}.jsonl"
            write_corpus(corpus, size)
            index = f"bench-memory-{size}-{os.getpid()}"
            command = [sys.executable, __file__, "--chunk-docs", str(args.chunk_docs)]
            if args.tracemalloc:
                command.append("--tracemalloc")
            answer = subprocess.run(
                [*command, "--one", url, str(corpus), index],
                capture_output=True,
                text=True,
                check=True,
            )
            figures = json.loads(answer.stdout.strip().splitlines()[-1])
            row = {"documents": size, **figures}
            row.update(trajectory(row, window))
            rows.append(row)
            print({k: v for k, v in row.items() if k != "rss_by_documents_read"}, flush=True)
    base = rows[0]["peak_rss_mb"]
    for row in rows:
        row["over_baseline_mb"] = row["peak_rss_mb"] - base
        row["corpus_over_window"] = row["documents"] / window
    return rows


def explanation(rows: list[dict[str, Any]], window: int) -> list[str]:
    """Sentences computed from the rows: where each size's memory went."""
    lines = []
    for row in rows:
        if not row["documents"]:
            continue
        load = row["rss_after_load_mb"]
        text = (
            f"{row['documents']} documents: {load:.0f} MB after loading the model and client; "
            f"{row['max_rss_first_window_mb'] - load:+.0f} MB by the end of the first window "
            f"({min(window, row['documents'])} documents read)"
        )
        if "growth_after_window_mb" in row:
            text += (
                f", then {row['growth_after_window_mb']:+.0f} MB over the other "
                f"{row['documents'] - window} ("
                f"{row['slope_after_window_mb_per_1000_docs']:+.1f} MB per 1,000 documents, "
                "least squares)"
            )
        malloc = row.get("malloc_end")
        if malloc:
            text += (
                f"; at the end malloc holds {malloc['system_mb']:.0f} MB in {malloc['arenas']} "
                f"arenas, {malloc['free_kept_mb']:.0f} MB of it free (freed, not returned), "
                f"plus {malloc['mmap_mb']:.0f} MB mapped"
            )
        text += (
            f"; the Python heap grew by {row['python_blocks_growth']:+,} blocks "
            f"({row['gc_objects_growth']:+,} gc-tracked objects)"
        )
        if "tracemalloc_peak_mb" in row:
            text += f", traced peak {row['tracemalloc_peak_mb']:.0f} MB"
        lines.append(text + ".")
    return lines


def markdown(result: dict[str, Any]) -> str:
    window = result["window_documents"]
    lines = [
        f"Batch window: {window} documents (encode_batch x (queue_batches + 2) + chunk_docs). "
        f"{result['machine']}.",
        "",
        "| documents | x window | RSS after load (MB) | max RSS in the first window (MB) | "
        "peak RSS (MB) | over the 0-doc baseline (MB) | after the window (MB) | "
        "RSS at the end (MB) | malloc free kept (MB) | docs/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        speed = row["indexed"] / row["seconds"] if row["seconds"] > 0 and row["indexed"] else 0
        after = row.get("growth_after_window_mb")
        after_cell = "-" if after is None else f"{after:+.0f}"
        malloc = row.get("malloc_end")
        free_cell = f"{malloc['free_kept_mb']:.0f}" if malloc else "-"
        lines.append(
            f"| {row['documents']} | {row['corpus_over_window']:.1f} | "
            f"{row['rss_after_load_mb']:.0f} | {row['max_rss_first_window_mb']:.0f} | "
            f"{row['peak_rss_mb']:.0f} | {row['over_baseline_mb']:+.0f} | "
            f"{after_cell} | {row['rss_end_mb']:.0f} | {free_cell} | {speed:.0f} |"
        )
    lines += ["", *(f"* {line}" for line in explanation(result["rows"], window))]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    """RSS against documents read, one line per size, with the batch window marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    window = result["window_documents"]
    figure, axis = plt.subplots(figsize=(6.5, 3.8))
    top = 0.0
    for row in result["rows"]:
        points = row["rss_by_documents_read"]
        if not row["documents"] or not points:
            continue
        axis.plot([d for d, _ in points], [m for _, m in points], label=f"{row['documents']} docs")
        axis.scatter([row["documents"]], [row["peak_rss_mb"]], marker="^", s=20)
        top = max(top, row["peak_rss_mb"])
    axis.axvline(window, linestyle="--", color="grey", label=f"batch window ({window} docs)")
    axis.set_xlabel("documents read (streamed from a JSONL file)")
    axis.set_ylabel("RSS of the process (MB); ^ = peak")
    axis.set_ylim(0, max(top, 1.0) * 1.2)
    axis.set_title("Bulk pipeline memory vs documents read (splade-tiny, CPU)")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="0,2000,20000", help="Corpus sizes; the first is 0.")
    parser.add_argument("--chunk-docs", type=int, default=500)
    parser.add_argument("--es-url")
    parser.add_argument("--tracemalloc", action="store_true", help="Also trace the Python heap.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/memory"))
    parser.add_argument(
        "--one", nargs=3, metavar=("URL", "CORPUS", "INDEX"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one:
        url, corpus, index = args.one
        print(json.dumps(measure_one(url, Path(corpus), index, args.chunk_docs, args.tracemalloc)))
        return
    if not args.sizes.startswith("0,"):
        parser.error(f"--sizes {args.sizes}: start with 0 (the baseline run), e.g. 0,2000,20000.")

    from splade_es.indexing.bulk import BulkConfig

    defaults = BulkConfig(index="x", chunk_docs=args.chunk_docs)
    window = defaults.encode_batch * (defaults.queue_batches + 2) + defaults.chunk_docs
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
    try:
        rows = run_sizes(args, url, window)
    finally:
        if node_state is not None:
            from splade_es.engines import stop_node

            stop_node(node_state)
            shutil.rmtree(node_state.parent, ignore_errors=True)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "window_documents": window,
        "chunk_docs": args.chunk_docs,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "memory.md").write_text(markdown(result))
    plot(result, args.out / "memory.png")
    print(markdown(result))


if __name__ == "__main__":
    main()
