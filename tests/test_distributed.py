"""Distributed encoding on a local Ray instance (2 CPUs, 2 workers) against the real node:
the same index as the single-process path, a worker SIGKILLed mid-run, resuming from the
index, one report and one dead-letter file; and the pure parts (config checks, merging)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import ray
from click.testing import CliRunner
from corpus_fixture import DOCS as CORPUS
from corpus_fixture import write_jsonl

from splade_es.cli import cli
from splade_es.cli.options import ClusterOptions
from splade_es.cli.ray_options import LOCAL, RayOptions
from splade_es.cluster.connection import Cluster, ClusterConfig
from splade_es.data.corpus import FieldNames, from_records
from splade_es.data.stdlib_corpus import stdlib_corpus
from splade_es.encoding.encoder import EncoderConfig
from splade_es.indexing.build import BuildConfig, ColbertIndexing, PreparedIndex, build_index
from splade_es.indexing.bulk import BulkConfig, BulkFailedError, BulkStoppedError
from splade_es.indexing.colbert_fields import ColbertStorage
from splade_es.indexing.distributed import RayConfig, check_ray_run, merge_outcomes, pool_shape
from splade_es.indexing.queue import Failure
from splade_es.indexing.workers import BatchOutcome, WorkerSpec

DOCS = stdlib_corpus(limit=200)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray instance of 2 CPUs for the module (a worker per CPU)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    workers = [pid for pid, (_, cmd) in _descendants(os.getpid()).items() if "ray::" in cmd]
    ray.shutdown()
    _reap(workers)


def _reap(pids: list[int], grace_s: float = 10.0) -> None:
    """SIGKILL the Ray workers of this module still alive ``grace_s`` after the shutdown (once,
    a worker outlived its raylet, holding ~850 MB)."""
    deadline = time.monotonic() + grace_s
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if _running(pid)]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def build(index: str, **bulk: object) -> BuildConfig:
    return BuildConfig(BulkConfig(index=index, progress=False, **bulk))  # type: ignore[arg-type]


def pool(es_node, **options: object) -> RayConfig:
    return RayConfig(workers=2, batch_size=16, cluster=es_node.config, **options)  # type: ignore[arg-type]


def stored_vectors(cluster: Cluster, index: str) -> dict[str, dict[str, float]]:
    body = {"query": {"match_all": {}}, "size": 1000, "_source": cluster.source_filter(["splade"])}
    hits = cluster.request("POST", f"/{index}/_search", body=body)["hits"]["hits"]
    return {hit["_id"]: hit["_source"]["splade"] for hit in hits}


def count(cluster: Cluster, index: str) -> int:
    cluster.request("POST", f"/{index}/_refresh")
    return int(cluster.request("GET", f"/{index}/_count")["count"])


# ---------------------------------------------------------------- on the real node


@pytest.mark.es
@pytest.mark.slow
def test_ray_builds_the_same_index_as_one_process(
    es_cluster, es_node, splade_encoder, index_names, local_ray
):
    single, spread = index_names(es_cluster, "single"), index_names(es_cluster, "ray")
    one = build_index(es_cluster, from_records(DOCS), splade_encoder, build(single))
    many = build_index(
        es_cluster, from_records(DOCS), splade_encoder, build(spread), ray=pool(es_node)
    )
    assert many.prepared.checkpoint is None
    assert (many.report.indexed, many.report.failed, many.documents) == (len(DOCS), 0, len(DOCS))
    assert many.report.encoded == len(DOCS) and many.report.bulk_requests >= len(DOCS) // 16
    assert many.report.counters["terms"] == pytest.approx(one.report.counters["terms"], abs=5)
    expected, got = stored_vectors(es_cluster, single), stored_vectors(es_cluster, spread)
    assert set(got) == set(expected) == {d["_id"] for d in DOCS}
    for doc_id, vector in expected.items():
        # 1 torch thread per worker vs 2 in one process: float sums in another order can
        # round to the neighbouring value of the 9 significant bits rank_features keep
        assert got[doc_id] == pytest.approx(vector, rel=2**-8), doc_id


def _descendants(root: int) -> dict[int, tuple[int, str]]:
    """``{pid: (parent pid, command line)}`` of every process under ``root`` (Linux /proc)."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        table[int(entry.name)] = (parent, command)
    mine: dict[int, tuple[int, str]] = {}
    frontier = {root}
    while frontier:
        frontier = {pid for pid, (parent, _) in table.items() if parent in frontier} - set(mine)
        mine.update({pid: table[pid] for pid in frontier})
    return mine


def _kill_a_worker_once_writing(cluster: Cluster, index: str, killed: list[int]) -> None:
    """SIGKILL one encoding actor of this test's Ray instance once some documents landed."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not killed:
        try:
            landed = count(cluster, index)
        except Exception:  # the index is not created yet
            landed = 0
        if landed:
            workers = [
                pid for pid, (_, cmd) in _descendants(os.getpid()).items() if "MapWorker" in cmd
            ]
            if workers:
                os.kill(workers[0], signal.SIGKILL)
                killed.extend([workers[0], landed])
                return
        time.sleep(0.05)


@pytest.mark.es
@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker in /proc")
def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(
    es_cluster, es_node, splade_encoder, index_names, local_ray
):
    index = index_names(es_cluster)
    docs = DOCS + [dict(d, _id=f"{d['_id']}#2") for d in DOCS]  # long enough to kill in
    killed: list[int] = []
    killer = threading.Thread(target=_kill_a_worker_once_writing, args=(es_cluster, index, killed))
    killer.start()
    result = build_index(
        es_cluster, from_records(docs), splade_encoder, build(index), ray=pool(es_node)
    )
    killer.join()
    assert killed and killed[1] < len(docs), f"no worker was killed mid-run: {killed}"
    report = result.report
    assert (result.documents, count(es_cluster, index), report.failed) == (len(docs), len(docs), 0)
    assert report.indexed + report.skipped == len(docs)  # the retried batch skips what landed
    assert stored_vectors(es_cluster, index).keys() == {d["_id"] for d in docs}


@pytest.mark.es
@pytest.mark.slow
def test_a_rerun_skips_what_the_index_holds_unless_it_changed(
    es_cluster, es_node, splade_encoder, index_names, local_ray
):
    index = index_names(es_cluster)
    half = len(DOCS) // 2
    first = build_index(
        es_cluster, from_records(DOCS[:half]), splade_encoder, build(index), ray=pool(es_node)
    )
    assert (first.report.indexed, first.report.skipped) == (half, 0)
    changed = [dict(DOCS[0], text="A changed text, encoded again."), *DOCS[1:]]
    again = build_index(
        es_cluster, from_records(changed), splade_encoder, build(index), ray=pool(es_node)
    )
    report = again.report
    assert report.skipped == half - 1  # the changed one is encoded again
    assert report.indexed == report.encoded == len(DOCS) - half + 1
    assert again.documents == len(DOCS)
    text = es_cluster.request("GET", f"/{index}/_doc/{DOCS[0]['_id']}")["_source"]["text"]
    assert text == "A changed text, encoded again."


@pytest.mark.es
@pytest.mark.slow
def test_colbert_embeddings_are_encoded_with_the_drivers_codebook(
    es_cluster, es_node, splade_encoder, colbert_encoder, index_names, local_ray
):
    docs = DOCS[:48]
    storage = ColbertStorage(codec="residual", centroids=8, sample_documents=32)
    colbert = ColbertIndexing(colbert_encoder, storage)
    single, spread = index_names(es_cluster, "single"), index_names(es_cluster, "ray")
    build_index(es_cluster, from_records(docs), splade_encoder, build(single), colbert)
    many = build_index(
        es_cluster, from_records(docs), splade_encoder, build(spread), colbert, ray=pool(es_node)
    )
    assert many.report.counters["colbert_tokens"] > 0 and many.documents == len(docs)
    ids = [d["_id"] for d in docs]
    expected = es_cluster.fetch_field(single, ids, "colbert", form="doc_values")
    got = es_cluster.fetch_field(spread, ids, "colbert", form="doc_values")
    assert got.keys() == expected.keys() == set(ids)
    assert all(len(got[i]) == len(expected[i]) for i in ids)  # same tokens, same codebook
    same = sum(got[i] == expected[i] for i in ids)
    assert same >= 0.8 * len(ids), same  # a residual bit may round the other way


@pytest.mark.es
@pytest.mark.slow
def test_a_blocked_index_stops_the_run_and_a_rerun_completes(
    es_cluster, es_node, splade_encoder, index_names, local_ray
):
    index, docs = index_names(es_cluster), from_records(DOCS[:64])
    config = build(index, max_attempts=2, initial_backoff_s=0.0, max_backoff_s=0.0)

    def block(prepared: PreparedIndex) -> None:
        body = {"index.blocks.write": True}
        es_cluster.request("PUT", f"/{prepared.index}/_settings", body=body)

    with pytest.raises(BulkStoppedError, match="refuses writes") as stopped:
        build_index(es_cluster, docs, splade_encoder, config, on_prepared=block, ray=pool(es_node))
    assert stopped.value.report.indexed == 0 and stopped.value.unsent > 0
    es_cluster.request("PUT", f"/{index}/_settings", body={"index.blocks.write": None})
    again = build_index(
        es_cluster, from_records(DOCS[:64]), splade_encoder, config, ray=pool(es_node)
    )
    assert (again.report.indexed, again.documents) == (64, 64)


@pytest.mark.es
@pytest.mark.slow
def test_failures_from_the_driver_and_the_workers_make_one_report_and_one_file(
    es_cluster, es_node, splade_encoder, index_names, local_ray, tmp_path
):
    index, dead = index_names(es_cluster), tmp_path / "dead.jsonl"
    records = [dict(d, year=2020) for d in DOCS[:40]]
    records += [{"_id": "refused", "text": "typed field", "year": "soon"}]  # by the cluster
    records += [{"_id": "", "text": "no id"}, dict(DOCS[0])]  # by the driver: bad id, repeat
    names = FieldNames(keep=("year",))
    config = replace(build(index, dead_letter=dead), fields={"year": {"type": "long"}})
    with pytest.raises(BulkFailedError, match="refused") as failed:
        build_index(
            es_cluster, from_records(records, names), splade_encoder, config, ray=pool(es_node)
        )
    report = failed.value.report
    assert report.indexed == 40 and report.indexed + report.failed == len(records)
    lines = [json.loads(line) for line in dead.read_text().splitlines()]
    assert sorted(f["error_type"] for f in lines) == sorted(f.error_type for f in report.failures)
    assert {f["stage"] for f in lines} == {"input", "index"} and len(lines) == 3


@pytest.mark.es
@pytest.mark.slow
def test_the_index_command_runs_on_the_ray_of_this_process(
    es_cluster, index_names, local_ray, tmp_path
):
    corpus = write_jsonl(tmp_path / "corpus.jsonl")
    index = index_names(es_cluster)
    args = ["index", str(corpus), "--index", index, "--es-url", es_cluster.url, "--no-progress"]
    result = CliRunner().invoke(cli, [*args, "--ray", "--ray-workers", "2"])
    assert result.exit_code == 0, result.output
    assert f"indexed        {len(CORPUS)}" in result.output
    assert count(es_cluster, index) == len(CORPUS)
    again = CliRunner().invoke(cli, [*args, "--ray"])
    assert again.exit_code == 0, again.output
    assert f"skipped        {len(CORPUS)} (already indexed" in again.output


# ---------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ray-workers", "0"], "Invalid value for '--ray-workers'"),
        (["--ray-workers", "2"], "--ray-workers needs --ray"),
        (["--ray", "--checkpoint", "c.tsv"], "a --ray run resumes from the index itself"),
    ],
)
def test_ray_options_that_would_do_nothing_are_refused(tmp_path, extra, message):
    corpus = write_jsonl(tmp_path / "corpus.jsonl")
    result = CliRunner().invoke(cli, ["index", str(corpus), "--index", "i", *extra])
    assert result.exit_code == 2 and message in result.output, result.output


def test_ray_without_an_address_means_this_machine(tmp_path):
    options = RayOptions(address=LOCAL, workers=None)
    local = ClusterOptions(None, None, None, None, None, False, "elasticsearch", tmp_path)
    node = Cluster(None, "elasticsearch", "9.0.0", "http://127.0.0.1:9299")
    config = options.config(local, node)
    assert config == RayConfig(cluster=ClusterConfig("http://127.0.0.1:9299", "elasticsearch"))
    remote = replace(local, es_url="https://es:9200", api_key="k")
    config = RayOptions("ray://head:10001", 8).config(remote, node)
    assert (config.address, config.workers, config.cluster.api_key) == ("ray://head:10001", 8, "k")
    assert RayOptions(None, None).config(local, node) is None


def test_outcomes_merge_into_one_report():
    failure = Failure("x", "index", 400, "mapper_parsing_exception", "bad year")
    outcomes = [
        BatchOutcome(3, indexed=2, skipped=1, encoded=2, bulk_requests=1, counters={"terms": 5}),
        BatchOutcome(
            4, indexed=3, encoded=4, bulk_requests=3, retried_documents=2, throttled_requests=1,
            smallest_chunk_docs=8, counters={"terms": 7, "truncated": 1}, failures=[failure],
        ),
        BatchOutcome(2, skipped=2, smallest_chunk_docs=1),  # sent nothing: not the smallest
    ]  # fmt: skip
    report = merge_outcomes("docs", [failure], outcomes, 2.0, 500)
    assert (report.indexed, report.skipped, report.encoded, report.failed) == (5, 3, 6, 1)
    assert (report.bulk_requests, report.retried_documents, report.throttled_requests) == (4, 2, 1)
    assert report.counters == {"terms": 12, "truncated": 1} and report.smallest_chunk_docs == 0
    assert report.docs_per_second == 2.5
    empty = merge_outcomes("docs", [], [], 0.0, 500)
    assert (empty.indexed, empty.smallest_chunk_docs) == (0, 500)


def test_worker_spec_leaves_files_refresh_and_raising_to_the_driver(tmp_path):
    bulk = BulkConfig(index="docs", dead_letter=tmp_path / "dead.jsonl", chunk_docs=50)
    spec = WorkerSpec.of(es_config := _config(), EncoderConfig(model="splade-tiny"), bulk)
    assert spec.cluster is es_config and spec.colbert is None
    assert (spec.bulk.dead_letter, spec.bulk.checkpoint, spec.bulk.refresh) == (None, None, False)
    assert (spec.bulk.raise_on_failure, spec.bulk.progress, spec.bulk.chunk_docs) == (
        False,
        False,
        50,
    )


def _config() -> ClusterConfig:
    return ClusterConfig(url="http://127.0.0.1:9200")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"workers": 0}, "workers=0"),
        ({"batch_size": -1}, "batch_size=-1"),
        ({"cpus_per_worker": 0}, r"cpus_per_worker=0: expected a number above 0"),
        ({"gpus_per_worker": -1}, r"gpus_per_worker=-1: expected a number >= 0"),
        ({"address": ""}, r"address='': expected a Ray address"),
    ],
)
def test_ray_config_names_the_bad_value(options, match):
    with pytest.raises(ValueError, match=match):
        RayConfig(**options)


def test_the_pool_takes_a_gpu_per_worker_when_the_cluster_has_them():
    gpus = {"CPU": 32.0, "GPU": 4.0}
    assert pool_shape(gpus, None, RayConfig()) == (1.0, 4)
    assert pool_shape(gpus, "cuda", RayConfig(gpus_per_worker=0.5)) == (0.5, 8)
    assert pool_shape(gpus, "cpu", RayConfig()) == (0.0, 32)  # pinned to the CPU
    assert pool_shape({"CPU": 2.0}, None, RayConfig(cpus_per_worker=4)) == (0.0, 1)
    assert pool_shape({"CPU": 8.0}, None, RayConfig(workers=3, gpus_per_worker=0)) == (0.0, 3)


def test_a_ray_run_refuses_a_checkpoint_file(tmp_path):
    with pytest.raises(ValueError, match="resumes from the index itself"):
        check_ray_run(BulkConfig(index="docs", checkpoint=tmp_path / "c.tsv"))


def test_without_ray_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'splade-es\[ray\]'"):
        check_ray_run(BulkConfig(index="docs"))


def test_batch_outcomes_travel_as_json():
    from splade_es.indexing.queue import Failure
    from splade_es.indexing.workers import BatchOutcome

    outcome = BatchOutcome(
        documents=3,
        indexed=1,
        counters={"terms": 7},
        failures=[Failure("d\u2028", "index", 400, "mapper_parsing_exception", "bad")],
        stopped=("gave up", "503", 1),
    )
    assert BatchOutcome.from_json(outcome.to_json()) == outcome
