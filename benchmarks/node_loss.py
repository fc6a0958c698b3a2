"""Node loss on a real three-node cluster, per engine: the counts RELIABILITY.md reports.

For each engine: start a 3-node cluster with the package's launcher (``--nodes 3``), then

1. bulk-index ``--documents`` real-model documents (splade-tiny) into 3 shards / 1 replica
   through a client that knows every member, SIGKILL ``node-1`` (the member the client writes
   through first) once ``--kill-after`` documents are acknowledged, and count what the index
   holds: stored, missing and duplicated ids, documents re-sent;
2. with a member holding a shard of a 0-replica index SIGKILLed, search a 1-replica index
   (complete answers expected, identical to before the loss) and the 0-replica one (partial
   answers expected, each flagged): counts of complete, flagged-partial and silently
   partial answers.

    python benchmarks/node_loss.py --engines elasticsearch,opensearch --documents 3000 \
        --out benchmarks/results/multinode

Writes ``node_loss.json`` and ``node_loss.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from splade_es.cluster.connection import Cluster, ClusterConfig, connect
from splade_es.data.corpus import from_records
from splade_es.data.stdlib_corpus import stdlib_corpus
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.engines import NodeConfig, kill_member, member_urls, start_node, stop_node
from splade_es.indexing.build import BuildConfig, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.search.searcher import SearchConfig, Searcher

QUERIES = (
    "how to read a file line by line",
    "parse command line arguments",
    "sort a list of dictionaries by key",
    "send an http request",
    "compress data with gzip",
    "regular expression groups",
    "date and time formatting",
    "thread pool executor",
)


def green(cluster: Cluster, index: str, timeout_s: float = 120.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        status = cluster.request("GET", f"/_cluster/health/{index}")["status"]
        if status == "green" or time.monotonic() > deadline:
            return str(status)
        time.sleep(0.5)


def kill_when(state: Path, name: str, checkpoint: Path, after: int, seen: list[int]) -> None:
    """SIGKILL member ``name`` once ``checkpoint`` holds ``after`` acknowledged documents."""
    while True:
        count = checkpoint.read_text().count("\n") if checkpoint.is_file() else 0
        if count >= after:
            kill_member(state, name)
            seen.append(count)
            return
        time.sleep(0.05)


def bulk_under_kill(
    state: Path, engine: str, encoder: SpladeEncoder, records: list[dict[str, Any]], after: int
) -> dict[str, Any]:
    urls = ",".join(member_urls(state))
    cluster = connect(ClusterConfig(url=urls, engine=engine))  # type: ignore[arg-type]
    checkpoint = Path(tempfile.mkdtemp()) / "acknowledged.tsv"
    bulk = BulkConfig(index="loss-bulk", chunk_docs=50, checkpoint=checkpoint, progress=False)
    seen: list[int] = []
    killer = threading.Thread(
        target=kill_when, args=(state, "node-1", checkpoint, after, seen), daemon=True
    )
    killer.start()
    built = build_index(
        cluster,
        from_records(records),
        encoder,
        BuildConfig(bulk, shards=3, replicas=1),
        on_prepared=lambda prepared: green(cluster, prepared.index) and None,
    )
    killer.join(timeout=5)
    cluster.request("POST", "/loss-bulk/_refresh")
    body = {"query": {"match_all": {}}, "size": len(records) + 100, "_source": False}
    hits = cluster.request("POST", "/loss-bulk/_search", body=body)["hits"]["hits"]
    distinct = {hit["_id"] for hit in hits}
    stored = cluster.request("GET", "/loss-bulk/_count")["count"]
    expected = {r["_id"] for r in records}
    report = built.report
    if not seen:
        raise RuntimeError("The run ended before node-1 was killed: raise --documents.")
    return {
        "documents": len(records),
        "killed": "node-1 (the client's first node)",
        "acknowledged_at_kill": seen[0],
        "stored": stored,
        "missing": len(expected - distinct),
        "duplicated": stored - len(distinct),  # documents counted beyond the distinct ids
        "resent": report.retried_documents if report else None,
        "failures": len(report.failures) if report else None,
        "seconds": report.seconds if report else None,
    }


def searches_under_loss(
    state: Path, engine: str, encoder: SpladeEncoder, records: list[dict[str, Any]]
) -> dict[str, Any]:
    """Searches of a 1-replica and a 0-replica index after a member other than node-1 that
    holds a shard of the 0-replica one is SIGKILLed (a fresh cluster of 3)."""
    cluster = connect(ClusterConfig(url=",".join(member_urls(state)), engine=engine))  # type: ignore[arg-type]
    searchers = {}
    for name, replicas in (("loss-covered", 1), ("loss-bare", 0)):
        bulk = BulkConfig(index=name, progress=False)
        build_index(
            cluster, from_records(records), encoder, BuildConfig(bulk, shards=3, replicas=replicas)
        )
        green(cluster, name)
        searchers[name] = Searcher(cluster, encoder, SearchConfig(index=name, source_includes=[]))
    before = {n: [s.search(q, k=10) for q in QUERIES] for n, s in searchers.items()}
    rows = cluster.request("GET", "/_cat/shards/loss-bare", params={"format": "json"})
    victim = sorted({row["node"] for row in rows if row.get("node") not in (None, "node-1")})[0]
    kill_member(state, victim)
    out: dict[str, Any] = {"killed": victim, "queries": len(QUERIES)}
    for name, expect_partial in (("loss-covered", False), ("loss-bare", True)):
        complete = flagged = silent = 0
        for query, full in zip(QUERIES, before[name], strict=True):
            hits = searchers[name].search(query, k=10)
            same = [(h.id, h.score) for h in hits] == [(h.id, h.score) for h in full]
            if hits.shards.partial:
                flagged += 1
            elif same:
                complete += 1
            else:
                silent += 1  # differs from the full answer without saying so
        out[name] = {"complete": complete, "flagged_partial": flagged, "silent_partial": silent}
        out[name]["expected"] = "flagged partial" if expect_partial else "complete"
    return out


def run_engine(engine: str, documents: int, after: int, heap: str) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="node-loss-")) / f"{engine}.json"
    cache = Path(os.environ.get("SPLADE_ES_CACHE_DIR", Path.home() / ".cache" / "splade-es"))
    config = NodeConfig(engine=engine, state_file=state, cache_dir=cache, heap=heap, nodes=3)  # type: ignore[arg-type]
    encoder = SpladeEncoder(EncoderConfig(model="splade-tiny", device="cpu"))
    records = [{**r, "text": r["text"][:400]} for r in stdlib_corpus(limit=documents)]
    try:
        info = start_node(config, os.environ)
        bulk = bulk_under_kill(state, engine, encoder, records, after)
        print(f"{engine} bulk under a kill: {json.dumps(bulk)}", flush=True)
        stop_node(state)
        start_node(config, os.environ)  # a whole cluster again
        search = searches_under_loss(state, engine, encoder, records[:300])
    finally:
        stop_node(state)
    return {"engine": engine, "version": info.version, "bulk": bulk, "search": search}


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| engine | documents | killed | acknowledged at kill | stored | missing | duplicated "
        "| re-sent | failed |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        b = r["bulk"]
        lines.append(
            f"| {r['engine']} {r['version']} | {b['documents']} | {b['killed']} "
            f"| {b['acknowledged_at_kill']} | {b['stored']} | {b['missing']} | {b['duplicated']} "
            f"| {b['resent']} | {b['failures']} |"
        )
    lines += [
        "",
        "| engine | index | member killed | queries | complete | flagged partial "
        "| silently partial |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        s = r["search"]
        for name, label in (("loss-covered", "1 replica"), ("loss-bare", "0 replicas")):
            row = s[name]
            lines.append(
                f"| {r['engine']} | {label} | {s['killed']} | {s['queries']} | {row['complete']} "
                f"| {row['flagged_partial']} | {row['silent_partial']} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--engines", default="elasticsearch,opensearch")
    parser.add_argument("--documents", type=int, default=3000)
    parser.add_argument("--kill-after", type=int, default=600)
    parser.add_argument("--heap", default="512m")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/multinode"))
    args = parser.parse_args()
    results = []
    for engine in args.engines.split(","):
        print(f"{engine}: 3 nodes, {args.documents} documents", flush=True)
        results.append(run_engine(engine, args.documents, args.kill_after, args.heap))
        print(json.dumps(results[-1], indent=2), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "node_loss.json").write_text(json.dumps(results, indent=2))
    (args.out / "node_loss.md").write_text(markdown(results))


if __name__ == "__main__":
    main()
