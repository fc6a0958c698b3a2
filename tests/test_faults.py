"""Fault injection against the real nodes: nothing lost, nothing duplicated, nothing blamed wrongly.

Each scenario indexes a corpus with a few documents that truly cannot be indexed (an empty text,
a value the mapping refuses) while the cluster misbehaves, then checks the index document by
document: the count, an ``mget`` of every id, each stored text and SPLADE field, and that the
dead-letter file lists exactly the unindexable documents.

``SPLADE_ES_FAULT_DOCS`` sets the corpus size (CI default 300), ``SPLADE_ES_FAULT_KILL_ENGINES``
the engines of the node-kill scenario (CI: elasticsearch), and ``SPLADE_ES_FAULTS_REPORT`` names
a JSON file that receives each scenario's figures (benchmarks/faults_long.sh sets all three).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli_runner import cli
from corpus_fixture import write_jsonl
from faults import Fault, inject, kill_node

from conftest import MARKER, cache_dir
from splade_es.cluster.admin import index_stats
from splade_es.cluster.connection import ClusterConfig, ClusterError, connect
from splade_es.data.corpus import FieldNames, Limits, from_records
from splade_es.engines import NodeConfig, start_node, stop_node
from splade_es.indexing.bulk import BulkConfig, BulkStoppedError, IndexReport, index_documents
from splade_es.indexing.splade_fields import SpladeFields, prepare_index

pytestmark = pytest.mark.faults

DOCS = int(os.environ.get("SPLADE_ES_FAULT_DOCS", "300"))
# engines for the node-kill scenario (each starts a node of its own)
KILL_ENGINES = os.environ.get("SPLADE_ES_FAULT_KILL_ENGINES", "elasticsearch").split(",")
FIGURES: list[dict[str, object]] = []


@pytest.fixture(scope="module", autouse=True)
def _write_figures():
    yield
    target = os.environ.get("SPLADE_ES_FAULTS_REPORT")
    if target and FIGURES:
        path = Path(target)
        previous = json.loads(path.read_text()) if path.exists() else []
        path.write_text(json.dumps(previous + FIGURES, indent=2))


def records(n: int) -> tuple[list[dict], set[str], set[str]]:
    """``n`` records; every 37th has a year the mapping refuses, every 53rd an empty text."""
    out, good, bad = [], set(), set()
    for i in range(n):
        doc_id = f"doc-{i}"
        record: dict[str, object] = {
            "_id": doc_id,
            "text": f"record {i} about topic {i % 11} and subject {i % 7}",
            "year": 1990 + i % 30,
        }
        if i % 37 == 36:
            record["year"] = "not a year"
            bad.add(doc_id)
        elif i % 53 == 52:
            record["text"] = ""
            bad.add(doc_id)
        else:
            good.add(doc_id)
        out.append(record)
    return out, good, bad


def make_index(cluster, encoder, name: str) -> str:
    prepare_index(
        cluster, encoder, name, extra_properties={"year": {"type": "integer"}}, replicas=0
    )
    return name


def run(cluster, encoder, index, rows, tmp_path, sleep=time.sleep, **config):
    settings = {
        "index": index,
        "chunk_docs": 25,
        "encode_batch": 25,
        "max_attempts": 12,
        "dead_letter": tmp_path / "dead.jsonl",
        "checkpoint": tmp_path / "checkpoint.tsv",
        "raise_on_failure": False,
        "progress": False,
        **config,
    }
    documents = from_records(rows, FieldNames(keep=("year",)), Limits(10_000))
    return index_documents(
        cluster, documents, [SpladeFields(encoder)], BulkConfig(**settings), sleep=sleep
    )


def verify(cluster, index, rows, good, bad, dead_letter: Path) -> dict[str, int]:
    """Count, mget every id, compare every stored text; the dead letter lists exactly ``bad``."""
    cluster.request("POST", f"/{index}/_refresh")
    assert index_stats(cluster, index)[0] == len(good)
    texts = {r["_id"]: r["text"] for r in rows}
    ids = sorted(good | bad)
    found = {}
    for start in range(0, len(ids), 500):
        answer = cluster.request("POST", f"/{index}/_mget", body={"ids": ids[start : start + 500]})
        for doc in answer["docs"]:
            if doc.get("found"):
                found[doc["_id"]] = doc["_source"]
    assert set(found) == good
    for doc_id, source in found.items():
        assert source["text"] == texts[doc_id]
    source_filter = cluster.source_filter(["splade"])  # ES 9 leaves vectors out of _source
    present = sorted(good)
    for start in range(0, len(present), 1000):
        part = present[start : start + 1000]
        hits = cluster.request(
            "POST",
            f"/{index}/_search",
            body={"query": {"ids": {"values": part}}, "size": len(part), "_source": source_filter},
        )["hits"]["hits"]
        assert len(hits) == len(part)
        empty = [hit["_id"] for hit in hits if not hit["_source"].get("splade")]
        assert not empty, f"no SPLADE terms stored for {empty[:5]}"
    lines = [json.loads(line) for line in dead_letter.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(bad)
    assert all(line["reason"] for line in lines)
    return {"documents": len(rows), "indexed": len(found), "dead_lettered": len(lines)}


def record(scenario: str, engine: str, report: IndexReport, **figures: object) -> None:
    FIGURES.append(
        {
            "scenario": scenario,
            "engine": engine,
            "bulk_requests": report.bulk_requests,
            "retried_documents": report.retried_documents,
            "throttled_requests": report.throttled_requests,
            "smallest_chunk_docs": report.smallest_chunk_docs,
            "seconds": round(report.seconds, 1),
            **figures,
        }
    )


def no_wait(seconds: float) -> None:
    """Tests skip the backoff waits; the retry counts are what matters."""


def test_429_on_30_percent_of_bulk_calls(cluster, splade_encoder, index_names, tmp_path):
    index = make_index(cluster, splade_encoder, index_names(cluster))
    rows, good, bad = records(DOCS)
    rng = random.Random(7)

    def plan(call, ids):
        if rng.random() < 0.3:
            return Fault(kind="429")  # the whole request refused
        if rng.random() < 0.1:  # some documents refused, as a busy write queue does
            return Fault(reject={i for i in ids if rng.random() < 0.3})
        return None

    with inject(cluster, plan) as recorder:
        report = run(cluster, splade_encoder, index, rows, tmp_path, sleep=no_wait)
    figures = verify(cluster, index, rows, good, bad, tmp_path / "dead.jsonl")
    refused = recorder.delivered.count(False)
    assert refused >= 0.2 * len(recorder.calls) and report.throttled_requests >= refused
    assert report.smallest_chunk_docs < 25  # back-pressure shrank the requests
    record("30% of bulk calls answered 429", cluster.engine, report, **figures)


def test_connection_resets_and_timeouts(cluster, splade_encoder, index_names, tmp_path):
    index = make_index(cluster, splade_encoder, index_names(cluster))
    rows, good, bad = records(DOCS)
    rng = random.Random(11)

    def plan(call, ids):
        draw = rng.random()
        if draw < 0.15:
            return Fault(kind="reset")  # before the node saw it
        if draw < 0.30:
            return Fault(kind="timeout", after=True)  # the node indexed it; the answer was lost
        return None

    with inject(cluster, plan) as recorder:
        report = run(cluster, splade_encoder, index, rows, tmp_path, sleep=no_wait)
    figures = verify(cluster, index, rows, good, bad, tmp_path / "dead.jsonl")
    assert recorder.delivered.count(False) > 0 and report.retried_documents > 0
    record("connection resets and timeouts on 30% of calls", cluster.engine, report, **figures)


def block(cluster, index: str, setting: str, value: bool) -> None:
    cluster.request(
        "PUT", f"/{index}/_settings", body={"index": {f"blocks.{setting}": value or None}}
    )


def test_index_made_read_only_mid_run_then_released(cluster, splade_encoder, index_names, tmp_path):
    index = make_index(cluster, splade_encoder, index_names(cluster))
    rows, good, bad = records(DOCS)

    def plan(call, ids):  # a disk-full flood stage at call 3, freed by the operator at call 8
        if call == 3:
            block(cluster, index, "read_only_allow_delete", True)
        if call == 8:
            block(cluster, index, "read_only_allow_delete", False)
        return None

    with inject(cluster, plan):
        report = run(cluster, splade_encoder, index, rows, tmp_path, sleep=no_wait)
    figures = verify(cluster, index, rows, good, bad, tmp_path / "dead.jsonl")
    assert report.retried_documents > 0
    record("index read-only (flood stage) mid-run, then freed", cluster.engine, report, **figures)


def test_an_index_that_stays_read_only_stops_the_run_resumably(
    cluster, splade_encoder, index_names, tmp_path
):
    index = make_index(cluster, splade_encoder, index_names(cluster))
    rows, good, bad = records(DOCS)

    def plan(call, ids):
        if call == 3:
            block(cluster, index, "write", True)
        return None

    with inject(cluster, plan), pytest.raises(BulkStoppedError, match="refuses writes") as caught:
        run(cluster, splade_encoder, index, rows, tmp_path, max_attempts=4, sleep=no_wait)
    stopped = caught.value.report
    landed = len((tmp_path / "checkpoint.tsv").read_text().splitlines())
    assert 0 < stopped.indexed == landed == index_stats(cluster, index)[0] < len(good)
    dead = tmp_path / "dead.jsonl"
    blamed = {json.loads(line)["id"] for line in dead.read_text().splitlines()}
    assert blamed <= bad  # only truly bad documents, never the blocked ones

    block(cluster, index, "write", False)
    report = run(cluster, splade_encoder, index, rows, tmp_path, sleep=no_wait)
    valid_input = sum(1 for row in rows if row["text"])
    assert report.skipped == landed and report.encoded == valid_input - landed
    figures = verify(cluster, index, rows, good, bad, dead)
    record(
        "index blocked for writes for good: run stops, re-run after unblocking",
        cluster.engine,
        report,
        landed_before_interruption=landed,
        **figures,
    )


@pytest.mark.es
def test_cli_exit_status_when_the_index_stays_blocked(es_cluster, index_names, tmp_path):
    rows, good, bad = records(60)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", rows[:20])
    index = index_names(es_cluster)
    common = ["--index", index, "--es-url", es_cluster.url, "--no-progress", "--keep-field", "year"]
    first = cli("index", str(corpus), *common, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    block(es_cluster, index, "write", True)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", rows)
    stopped = cli(
        "index", str(corpus), *common, "--max-attempts", "2", "--max-backoff", "0.01", cwd=tmp_path
    )
    assert stopped.returncode == 3, stopped.stderr
    assert "refuses writes" in stopped.stderr
    assert "re-run with the same --checkpoint" in stopped.stderr
    assert "skipped        20" in stopped.stdout
    block(es_cluster, index, "write", False)
    resumed = cli("index", str(corpus), *common, cwd=tmp_path)
    assert resumed.returncode == 1  # the truly bad documents, and only them
    dead = tmp_path / f"dead-letter-{index}.jsonl"
    assert sorted(json.loads(line)["id"] for line in dead.read_text().splitlines()) == sorted(
        b for b in bad if int(b.split("-")[1]) < 60
    )
    assert index_stats(es_cluster, index)[0] == len(good)


@pytest.fixture(
    params=[pytest.param(e, marks=getattr(pytest.mark, MARKER[e])) for e in KILL_ENGINES]
)
def own_node(request, tmp_path):
    """A node of its own that this test may kill."""
    state = tmp_path / "node" / "state.json"
    info = start_node(
        NodeConfig(engine=request.param, state_file=state, cache_dir=cache_dir(), heap="512m"),
        os.environ,
    )
    extra: list[int] = []
    yield info, extra
    for pid in extra:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    stop_node(state)


def test_node_killed_and_restarted_mid_run(own_node, splade_encoder, tmp_path):
    info, relaunched = own_node
    cluster = connect(ClusterConfig(url=info.url, engine=info.engine, request_timeout_s=10))
    index = make_index(cluster, splade_encoder, "killed-node")
    rows, good, bad = records(DOCS)
    timings: dict[str, float] = {}

    def crash_and_restart() -> None:
        started = time.monotonic()
        relaunch = kill_node(info.pid, info.log_file)
        relaunched.append(relaunch.start())
        while time.monotonic() < started + 300:
            try:
                if cluster.request("GET", "/_cluster/health")["status"] in ("yellow", "green"):
                    break
            except ClusterError:
                pass
            time.sleep(0.5)
        timings["down_seconds"] = time.monotonic() - started

    killer = threading.Thread(target=crash_and_restart)

    def plan(call, ids):
        if call == 4:
            killer.start()  # the node dies while this request is on its way
            time.sleep(0.5)
        return None

    with inject(cluster, plan):
        report = run(
            cluster,
            splade_encoder,
            index,
            rows,
            tmp_path,
            max_attempts=40,
            initial_backoff_s=0.5,
            max_backoff_s=3.0,
        )
    killer.join()
    figures = verify(cluster, index, rows, good, bad, tmp_path / "dead.jsonl")
    assert report.retried_documents > 0
    record(
        "node SIGKILLed mid-run and restarted",
        info.engine,
        report,
        node_down_seconds=round(timings["down_seconds"], 1),
        **figures,
    )
    cluster.close()


@pytest.mark.es
def test_indexer_sigkilled_mid_run_then_resumed(es_cluster, index_names, tmp_path):
    n = max(DOCS, 600)
    rows, good, bad = records(n)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", rows)
    index = index_names(es_cluster)
    checkpoint = tmp_path / "checkpoint.tsv"
    command = [
        "index", str(corpus), "--index", index, "--es-url", es_cluster.url, "--no-progress",
        "--keep-field", "year", "--checkpoint", str(checkpoint), "--chunk-docs", "20",
        "--dead-letter", str(tmp_path / "dead.jsonl"),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("ES_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "splade_es", *command],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoint.exists() and len(checkpoint.read_text().splitlines()) >= n // 3:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the indexer finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    es_cluster.request("POST", f"/{index}/_refresh")
    landed = index_stats(es_cluster, index)[0]
    checkpointed = len(checkpoint.read_text().splitlines())
    assert 0 < checkpointed <= landed < len(good)

    resumed = cli(*command, cwd=tmp_path)
    assert resumed.returncode == 1, resumed.stderr  # only the truly bad documents failed
    assert f"skipped        {checkpointed} " in resumed.stdout
    reindexed = int(resumed.stdout.split("indexed", 1)[1].split()[0])
    assert reindexed == len(good) - checkpointed  # encoded again: the unacknowledged only
    figures = verify(es_cluster, index, rows, good, bad, tmp_path / "dead.jsonl")
    FIGURES.append(
        {
            "scenario": "indexer SIGKILLed mid-run, then resumed",
            "engine": "elasticsearch",
            "landed_before_interruption": landed,
            "checkpointed_before_kill": checkpointed,
            "re_encoded_although_landed": landed - checkpointed,
            **figures,
        }
    )


@pytest.mark.es
def test_memory_stays_within_the_batch_window(es_cluster, splade_encoder, index_names, tmp_path):
    """The corpus is streamed: at no bulk call are more documents read than the window."""
    index = make_index(es_cluster, splade_encoder, index_names(es_cluster))
    config = {"chunk_docs": 10, "encode_batch": 8, "queue_batches": 2}
    # read ahead at most: queued batches + one being built + one being encoded + one chunk
    window = config["encode_batch"] * (config["queue_batches"] + 2) + config["chunk_docs"]
    rows, good, bad = records(12 * window)
    pulled = 0
    delivered = 0
    worst = 0

    def streamed():
        nonlocal pulled
        for row in rows:
            pulled += 1
            yield row

    def plan(call, ids):
        nonlocal worst, delivered
        worst = max(worst, pulled - delivered)
        delivered += len(ids)
        return None

    documents = from_records(streamed(), FieldNames(keep=("year",)), Limits(10_000))
    with inject(es_cluster, plan):
        report = index_documents(
            es_cluster,
            documents,
            [SpladeFields(splade_encoder)],
            BulkConfig(
                index=index,
                **config,
                dead_letter=tmp_path / "dead.jsonl",
                raise_on_failure=False,
                progress=False,
            ),
        )
    assert report.indexed == len(good) and pulled == len(rows)
    assert worst <= window + len(bad), (worst, window)
