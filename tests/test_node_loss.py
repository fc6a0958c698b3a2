"""Searching a three-node cluster while a member is lost: complete answers while a replica
covers every shard, an answer that says it is partial when a shard has no copy left, and
routed documents found by the embedding fetches."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest
from cli_runner import cli
from corpus_fixture import DOCS, QUERIES
from test_multi_node import _green

from colbert_rerank.storage import mget_fetcher
from splade_es.cluster.connection import ClusterError
from splade_es.data.corpus import FieldNames, from_records
from splade_es.engines import kill_member
from splade_es.indexing.build import BuildConfig, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.search.searcher import SearchConfig, Searcher

if TYPE_CHECKING:
    from cluster_fixture import LocalCluster

pytestmark = [pytest.mark.multinode, pytest.mark.slow]
pytest_plugins = ["cluster_fixture"]

TENANTS = ("red", "green", "blue", "amber")


def _build(multinode: LocalCluster, encoder, index: str, replicas: int, routing=None) -> None:
    records = [{**d, "tenant": TENANTS[n % len(TENANTS)]} for n, d in enumerate(DOCS)]
    bulk = BulkConfig(index=index, progress=False, routing_field=routing)
    config = BuildConfig(bulk, shards=3, replicas=replicas)
    documents = from_records(records, FieldNames(keep=("tenant",)))
    build_index(multinode.cluster, documents, encoder, config)
    assert _green(multinode.cluster, index)["status"] == "green"


def _holder_of_a_shard(multinode: LocalCluster, index: str) -> str:
    """A member other than node-1 (the client's) holding a shard of ``index``."""
    rows = multinode.cluster.request("GET", f"/_cat/shards/{index}", params={"format": "json"})
    return sorted(row["node"] for row in rows if row["node"] != "node-1")[0]


def test_searches_while_a_member_is_lost(multinode, splade_encoder, index_names, caplog):
    cluster = multinode.cluster
    covered, bare = index_names(cluster, "covered"), index_names(cluster, "bare")
    routed = index_names(cluster, "routed")
    _build(multinode, splade_encoder, covered, replicas=1)
    _build(multinode, splade_encoder, bare, replicas=0)
    _build(multinode, splade_encoder, routed, replicas=1, routing="tenant")
    searchers = {
        i: Searcher(cluster, splade_encoder, SearchConfig(index=i)) for i in (covered, bare)
    }
    texts = [text for text, _ in QUERIES.values()]
    before = {i: [s.search(t, k=50) for t in texts] for i, s in searchers.items()}  # all

    victim = _holder_of_a_shard(multinode, bare)
    shards = cluster.request("GET", f"/_cat/shards/{bare}", params={"format": "json"})
    lost = sum(row["node"] == victim for row in shards)
    kill_member(multinode.state_file, victim)

    for text, hits in zip(texts, before[covered], strict=True):  # a replica answers for it
        after = searchers[covered].search(text, k=50)
        assert not after.shards.partial, after.shards.summary
        assert [(h.id, h.score) for h in after] == [(h.id, h.score) for h in hits]

    caplog.set_level(logging.WARNING, logger="splade_es.search.searcher")
    partial = searchers[bare].search(texts[0], k=50)
    assert partial.shards.partial and partial.shards.missing == lost >= 1  # failed or unassigned
    assert {h.id for h in partial} < {h.id for h in before[bare][0]}  # the lost shard's are gone
    assert f"{lost} of 3 shards did not answer" in caplog.text

    strict = Searcher(cluster, splade_encoder, SearchConfig(index=bare, allow_partial=False))
    with pytest.raises(ClusterError):
        strict.search(texts[0], k=10)

    url = ["--es-url", multinode.urls[0], "--engine", multinode.engine]
    shown = cli("search", texts[0], "--index", bare, *url)
    assert shown.returncode == 0, shown.stderr
    assert f"warning: partial answer: {lost} of 3 shards did not answer" in shown.stderr

    ids = [d["_id"] for d in DOCS]  # routed documents, fetched by id while a member is down
    expected = {d["_id"]: TENANTS[n % len(TENANTS)] for n, d in enumerate(DOCS)}
    assert cluster.fetch_field(routed, ids, "tenant") == expected
    assert mget_fetcher(cluster.client, routed, field="tenant")(ids) == expected
