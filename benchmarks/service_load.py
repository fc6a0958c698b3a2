"""Load of the drop-in service (``splade-es serve``): throughput against the library in
process, then the upstream killed and relaunched mid-run.

Throughput (``service_throughput.py``): N client threads through the service (the engine's
official client, the library's BM25 query, size k), then the same N threads calling
``search_then_rerank`` in process (BM25 top ``--rerank-k`` reranked, one shared Searcher and
Reranker), warmed up alike and timed back to back for ``--seconds`` each. Targets: service
throughput >= 0.8x in process, zero errors, service p95 <= 3x p50; every answer reranked
and its top k equal to the in-process one (score ties reported apart).

Upstream loss (``service_outage.py``, skipped with ``--no-outage``): a node of its own with
a small index, the service in front, the clients running while the node is SIGKILLed and
relaunched: answers by status per phase, the error bodies' shape, the longest request
against the client timeout, the time to the first reranked answer after the node is back.

SciFact (``../shared/datasets/scifact``) by default, indexed with SPLADE terms and ColBERT
embeddings, or reused (the index ``benchmarks/load.py`` would build for the same corpus and
size). Without ``--es-url`` a local node is started for the throughput part. Writes
``service_load.json``, ``service_load.md`` and ``service_load.png`` (latency of both paths)
to ``--out``.

Usage (the target: 8 clients x 60 s per path; ``--smoke``: 2 clients x 5 s, 40 documents,
4 queries and a short outage, in under 3 minutes):
    python benchmarks/service_load.py --es-url http://127.0.0.1:9200
    python benchmarks/service_load.py --es-url http://127.0.0.1:9200 --smoke --out /tmp/svc
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from load import corpus_and_queries, ensure_index, plot
from service_client import ServiceAnswer, ServiceOptions
from service_outage import OutagePlan, OutageSetup, describe_outage, own_node, run_outage
from service_throughput import ThroughputSetup, describe_throughput, run_throughput

from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
from splade_es.cluster.connection import Cluster, ClusterConfig, connect
from splade_es.data.corpus import Document
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.engines import NodeConfig, start_node, stop_node

SMOKE = {
    "clients": 2,
    "seconds": 5.0,
    "max_docs": 40,
    "max_queries": 4,
    "outage_docs": 40,
    "kill_at": 3.0,
    "down": 2.0,
    "after": 4.0,
    "step": 2.0,
}


def parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    made = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    add = made.add_argument
    add("--engine", default="elasticsearch", choices=["elasticsearch", "opensearch"])
    add("--es-url", help="Cluster of the throughput part (default: start a local node).")
    add("--clients", type=int, default=8, help="Concurrent client threads (both paths).")
    add("--seconds", type=float, default=60.0, help="Timed window of each path.")
    add("-k", type=int, default=10, help="Hits returned per request (the app's size).")
    add("--rerank-k", type=int, default=100, help="First-stage hits reranked.")
    add("--rerank-timeout-ms", type=int, default=1000, help="The service's rerank budget.")
    add("--rerank-workers", type=int, default=2, help="The service's model threads.")
    add("--corpus", default="../shared/datasets/scifact", help="A BEIR folder, or 'stdlib'.")
    add("--max-docs", type=int, default=1000)
    add("--max-queries", type=int, default=16)
    add("--index", help="Index to build or reuse (default: load.py's name for the corpus).")
    add("--client-timeout", type=float, default=90.0, help="Seconds before a request hung.")
    add("--no-outage", action="store_true", help="Skip the upstream-loss phase.")
    add("--outage-docs", type=int, default=200, help="Documents on the node that is killed.")
    add("--kill-at", type=float, default=10.0, help="Outage: SIGKILL this many s in.")
    add("--down", type=float, default=5.0, help="Outage: relaunch this many s after.")
    add("--after", type=float, default=10.0, help="Outage: load kept up after recovery (s).")
    add("--step", type=float, default=5.0, help="Outage: client round length (s).")
    add("--max-outage-run", type=float, default=300.0, help="Outage: give up after (s).")
    add("--smoke", action="store_true", help=f"Smoke size: {SMOKE} (flags given win).")
    add("--out", type=Path, default=Path("benchmarks/results/service"))
    return made


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options; ``--smoke`` makes the smoke sizes the defaults."""
    made = parser()
    first = made.parse_args(argv)
    if first.smoke:
        made.set_defaults(**SMOKE)
        return made.parse_args(argv)
    return first


@contextlib.contextmanager
def throughput_cluster(args: argparse.Namespace, work: Path) -> Iterator[Cluster]:
    """``--es-url``'s cluster, or a local node started (and stopped) here."""
    if args.es_url:
        cluster = connect(ClusterConfig(url=args.es_url))
        try:
            yield cluster
        finally:
            cluster.close()
        return
    cache = Path(os.environ.get("SPLADE_ES_CACHE_DIR", Path.home() / ".cache" / "splade-es"))
    state = work / "node" / "state.json"
    info = start_node(
        NodeConfig(engine=args.engine, state_file=state, cache_dir=cache, heap="1g"), os.environ
    )
    cluster = connect(ClusterConfig(url=info.url, engine=args.engine))
    try:
        yield cluster
    finally:
        cluster.close()
        stop_node(state)


def meta(
    args: argparse.Namespace, cluster: Cluster, documents: list[Any], queries: list[str]
) -> dict[str, Any]:
    """What the run was: command, machine, corpus, sizes."""
    shown = {k: v for k, v in vars(args).items() if v not in (None, False)}
    return {
        "command": "python benchmarks/service_load.py "
        + " ".join(
            f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in shown.items()
        ),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "engine": f"{cluster.engine} {cluster.version}",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "corpus": "stdlib" if args.corpus == "stdlib" else Path(args.corpus).name,
        "documents": sum(isinstance(d, Document) for d in documents),
        "queries": len(queries),
        "clients": args.clients,
        "seconds": args.seconds,
        "k": args.k,
        "rerank_k": args.rerank_k,
        "rerank_timeout_ms": args.rerank_timeout_ms,
    }


def outage_plan(args: argparse.Namespace) -> OutagePlan:
    return OutagePlan(
        kill_at_s=args.kill_at,
        down_s=args.down,
        after_s=args.after,
        max_s=args.max_outage_run,
        step_s=args.step,
        client_timeout_s=args.client_timeout,
    )


def write_outputs(out: Path, result: dict[str, Any], runs: dict[str, Any]) -> str:
    """``service_load.{json,md,png}`` under ``out``; returns the markdown."""
    report = describe_throughput(result)
    if "outage" in result:
        report += "\n" + describe_outage(result["outage"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "service_load.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "service_load.md").write_text(report)
    service = runs["service"].samples
    latencies = {
        "service (reranked answers)": [
            s.latency_ms
            for s in service
            if isinstance(s.response, ServiceAnswer) and s.response.reranked
        ],
        "in process": [s.latency_ms for s in runs["in process"].samples if s.response],
    }
    facts = result["meta"]
    title = f"{facts['engine']}: {facts['clients']} clients x {facts['seconds']:g} s per path"
    plot(latencies, title, out / "service_load.png")
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    documents, queries = corpus_and_queries(args.corpus, args.max_docs, args.max_queries)
    corpus_name = "stdlib" if args.corpus == "stdlib" else Path(args.corpus).name
    index = args.index or f"splade-es-load-{corpus_name}-{len(documents)}"
    splade = SpladeEncoder(EncoderConfig(model="splade-tiny", device="cpu"))
    colbert = ColbertEncoder(ColbertConfig(device="cpu"))
    options = ServiceOptions(args.rerank_k, args.rerank_timeout_ms, args.rerank_workers)
    work = Path(tempfile.mkdtemp(prefix="splade-es-service-load-"))
    engine = args.engine
    try:
        with contextlib.ExitStack() as stack:
            cluster = stack.enter_context(throughput_cluster(args, work))
            engine = cluster.engine
            node = None if args.no_outage else stack.enter_context(own_node(engine, work))
            print(ensure_index(cluster, index, documents, splade, colbert), flush=True)
            result: dict[str, Any] = {"meta": meta(args, cluster, documents, queries)}
            if node is not None:
                print("waiting for the outage node to be up ...", flush=True)
                info = node.result()
            setup = ThroughputSetup(
                cluster,
                index,
                queries,
                splade,
                colbert,
                args.clients,
                args.seconds,
                args.k,
                options,
                work,
                args.client_timeout,
            )
            figures, runs = run_throughput(setup)
            result["throughput"] = figures
            if node is not None:
                outage = OutageSetup(
                    engine,
                    documents[: args.outage_docs],
                    queries,
                    splade,
                    colbert,
                    args.clients,
                    args.k,
                    options,
                    work,
                )
                result["outage"] = run_outage(outage, outage_plan(args), info)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(write_outputs(args.out, result, runs))
    return result


if __name__ == "__main__":
    main()
