"""A real three-node cluster on this machine, per engine (``splade-es node start --nodes 3``):
it forms and spreads shards, SPLADE scores do not depend on the shard count, a bulk run
survives a member SIGKILLed under it, and ``node stop`` stops every member."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cli_runner import cli
from corpus_fixture import DOCS, QUERIES

from colbert_rerank.fusion import Fusion
from splade_es.cluster.connection import ClusterConfig, connect
from splade_es.data.corpus import from_records
from splade_es.engines import kill_member, member_statuses
from splade_es.engines.node_state import member_running
from splade_es.indexing.build import BuildConfig, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.search.searcher import SearchConfig, Searcher

if TYPE_CHECKING:
    from cluster_fixture import LocalCluster

pytestmark = [pytest.mark.multinode, pytest.mark.slow]
pytest_plugins = ["cluster_fixture"]  # es_multinode, opensearch_multinode, multinode

NODES = 3  # cluster_fixture.NODES (not imported here: pytest_plugins imports it first)
NAMES = {f"node-{i}" for i in range(1, NODES + 1)}
KILL_CORPUS = 1500  # documents; splade-tiny encodes ~40/s on 2 busy CPUs: a run of ~40 s
KILL_AFTER = 150  # acknowledged documents before a member is killed


def node_cli(command: str, cluster: LocalCluster):
    return cli("node", command, "--engine", cluster.engine, "--cache-dir", str(cluster.cache_dir))


def test_three_nodes_form_one_cluster_and_hold_every_shard(multinode, index_names):
    cluster = multinode.cluster
    nodes = cluster.request("GET", "/_cat/nodes", params={"format": "json", "h": "name"})
    assert {row["name"] for row in nodes} == NAMES
    assert len(set(multinode.urls)) == NODES

    status = node_cli("status", multinode)
    assert status.returncode == 0, status.stderr
    assert f"{NODES} of {NODES} nodes in the cluster" in status.stdout
    for name, url in zip(sorted(NAMES), multinode.urls, strict=True):
        assert f"  {name}: running at {url} (pid " in status.stdout

    index = index_names(cluster)
    settings = {"index": {"number_of_shards": 3, "number_of_replicas": 1}}
    cluster.request("PUT", f"/{index}", body={"settings": settings})
    health = _green(cluster, index)
    assert (health["status"], health["active_shards"], health["number_of_nodes"]) == (
        "green",
        6,
        NODES,
    )
    shards = cluster.request("GET", f"/_cat/shards/{index}", params={"format": "json"})
    assert {row["node"] for row in shards} == NAMES  # every member holds a copy
    assert {row["prirep"] for row in shards} == {"p", "r"}


def _green(cluster, index: str, timeout_s: float = 90.0) -> dict:
    """The index's health once green (or as it is after ``timeout_s``); polled, because
    opensearch-py reads a ``timeout`` parameter as its own request timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        health = cluster.request("GET", f"/_cluster/health/{index}")
        if health["status"] == "green" or time.monotonic() > deadline:
            return health
        time.sleep(0.5)


def test_splade_scores_do_not_depend_on_the_shard_count(multinode, splade_encoder, index_names):
    cluster = multinode.cluster
    searchers = {}
    for shards in (1, 3):
        index = index_names(cluster, f"{shards}-shards")
        config = BuildConfig(BulkConfig(index=index, progress=False), shards=shards, replicas=1)
        built = build_index(cluster, from_records(DOCS), splade_encoder, config)
        assert built.documents == len(DOCS)
        searchers[shards] = Searcher(cluster, splade_encoder, SearchConfig(index=index))
    for text, relevant in QUERIES.values():
        one, three = (
            [(hit.id, hit.score) for hit in searchers[n].search(text, k=10)] for n in (1, 3)
        )
        assert one == three, text  # identical ids, order and scores
        assert one[0][0] == relevant and len(one) > 1
    # BM25 has IDF: per-shard statistics differ unless they are gathered first (dfs)
    dfs = Searcher(
        cluster,
        splade_encoder,
        SearchConfig(index=searchers[3].config.index, search_type="dfs_query_then_fetch"),
    )
    query = "light and stars"
    single = {h.id: h.score for h in searchers[1].bm25(query, k=16)}
    plain = {h.id: h.score for h in searchers[3].bm25(query, k=16)}
    gathered = {h.id: h.score for h in dfs.bm25(query, k=16)}
    assert gathered.keys() == single.keys()
    assert all(gathered[d] == pytest.approx(single[d], rel=1e-5) for d in single)
    assert any(plain[d] != pytest.approx(single[d], rel=1e-5) for d in plain)
    # hybrid fuses BM25's scores (weighted: min-max of each list), so it inherits dfs's rule
    weighted = Fusion(method="weighted", weight=0.5)
    one = {h.id: h.score for h in searchers[1].hybrid(query, k=16, fusion=weighted)}
    three = {h.id: h.score for h in dfs.hybrid(query, k=16, fusion=weighted)}
    undistributed = {h.id: h.score for h in searchers[3].hybrid(query, k=16, fusion=weighted)}
    assert three.keys() == one.keys()
    assert all(three[d] == pytest.approx(one[d], rel=1e-5, abs=1e-6) for d in one)
    assert any(
        undistributed[d] != pytest.approx(one[d], rel=1e-5)
        for d in one.keys() & undistributed.keys()
    )


def _corpus(size: int) -> list[dict[str, str]]:
    topics = ["rivers", "stars", "bread", "engines", "glaciers", "chess", "vaccines"]
    return [
        {"_id": f"doc-{i:05d}", "text": f"Note {i} on {topics[i % 7]} and item {i % 101}."}
        for i in range(size)
    ]


class _Killer(threading.Thread):
    """SIGKILLs ``name`` once the checkpoint shows ``after`` acknowledged documents."""

    def __init__(self, cluster: LocalCluster, name: str, checkpoint: Path, after: int) -> None:
        super().__init__(daemon=True)
        self.cluster, self.name, self.checkpoint, self.after = cluster, name, checkpoint, after
        self.acknowledged_at_kill: int | None = None
        self.done = threading.Event()
        self.error: BaseException | None = None

    def acknowledged(self) -> int:
        if not self.checkpoint.is_file():
            return 0
        return self.checkpoint.read_text().count("\n")

    def run(self) -> None:
        try:
            while not self.done.is_set():
                seen = self.acknowledged()
                if seen >= self.after:
                    kill_member(self.cluster.state_file, self.name)
                    self.acknowledged_at_kill = seen
                    return
                time.sleep(0.05)
        except BaseException as error:
            self.error = error


def test_a_member_killed_mid_bulk_loses_and_duplicates_nothing(
    multinode, splade_encoder, index_names, tmp_path
):
    # The client knows every member and talks to node-1 first; node-1 is the one killed, so
    # the run survives the loss of the node it was writing through, not just of a data node.
    cluster = connect(ClusterConfig(url=",".join(multinode.urls), engine=multinode.engine))
    records = _corpus(KILL_CORPUS)
    index = index_names(cluster)
    checkpoint = tmp_path / "acknowledged.tsv"
    bulk = BulkConfig(
        index=index, chunk_docs=25, checkpoint=checkpoint, progress=False, max_backoff_s=5.0
    )
    config = BuildConfig(bulk, shards=3, replicas=1)
    victim = "node-1"
    killer = _Killer(multinode, victim, checkpoint, KILL_AFTER)
    killer.start()
    try:
        # Green first: a replica still recovering from its primary is not in sync, and losing
        # that primary would leave the shard without a copy (red; the run could not finish).
        built = build_index(
            cluster,
            from_records(records),
            splade_encoder,
            config,
            on_prepared=lambda prepared: _green(cluster, prepared.index),
        )
    finally:
        killer.done.set()
        killer.join()
    assert killer.error is None, killer.error
    assert killer.acknowledged_at_kill is not None, "the run ended before the kill"
    assert killer.acknowledged_at_kill < KILL_CORPUS
    statuses = {s.member.name: s for s in member_statuses(multinode.state_file)}
    assert not statuses[victim].running

    assert built.report is not None and built.report.indexed == KILL_CORPUS
    print(  # shown with -s: how hard the kill hit the run
        f"{multinode.engine}: killed {victim} after {killer.acknowledged_at_kill} acknowledged; "
        f"{built.report.bulk_requests} bulk requests, {built.report.retried_documents} "
        f"documents re-sent, {built.report.seconds:.1f} s"
    )
    assert built.report.failures == []
    cluster.request("POST", f"/{index}/_refresh")
    counted = cluster.request("GET", f"/{index}/_count")
    assert counted["_shards"]["failed"] == 0  # a copy of every shard survived
    assert counted["count"] == KILL_CORPUS
    found = cluster.request(
        "GET",
        f"/{index}/_search",
        body={"query": {"match_all": {}}, "size": KILL_CORPUS + 10, "_source": False},
    )
    ids = [hit["_id"] for hit in found["hits"]["hits"]]
    assert len(ids) == KILL_CORPUS and set(ids) == {r["_id"] for r in records}


def test_node_stop_stops_every_member(multinode_engine):
    multinode = multinode_engine  # as the kill test left it (no restart first)
    members = [s.member for s in member_statuses(multinode.state_file)]
    assert len(members) == NODES
    stop = node_cli("stop", multinode)
    assert stop.returncode == 0, stop.stderr
    assert f"{NODES} nodes from {members[0].url} stopped" in stop.stdout
    assert not any(member_running(m) for m in members)
    assert not any(Path(m.work_dir).exists() for m in members)
    after = node_cli("status", multinode)
    assert after.returncode == 3 and "not started" in after.stdout
