"""Query pruning, search type and custom routing against the real nodes (one node each)."""

from __future__ import annotations

import pytest
from corpus_fixture import DOCS
from test_search import exact_ranking

from colbert_rerank.storage import mget_fetcher
from splade_es.data.corpus import FieldNames, from_records
from splade_es.indexing.bulk import BulkConfig, BulkFailedError, index_documents
from splade_es.indexing.splade_fields import SpladeFields, prepare_index
from splade_es.search.pruning import QueryPruning
from splade_es.search.searcher import SearchConfig, Searcher

QUERY = "aspirin heart attack risk"
TENANTS = ("red", "green", "blue", "amber", "violet")


def build(cluster, encoder, name, records=DOCS, shards=None, routing_field=None, keep=()):
    prepare_index(cluster, encoder, name, shards=shards)
    index_documents(
        cluster,
        from_records(records, FieldNames(keep=keep)),
        [SpladeFields(encoder)],
        BulkConfig(index=name, progress=False, routing_field=routing_field),
    )
    return name


def searcher(cluster, encoder, index, **options):
    return Searcher(cluster, encoder, SearchConfig(index=index, source_includes=[], **options))


def test_two_phase_pruning_gives_exact_scores_in_its_window(cluster, splade_encoder, index_names):
    index = build(cluster, splade_encoder, index_names(cluster))
    default = searcher(cluster, splade_encoder, index)
    assert default.pruning == QueryPruning()  # auto: a small index is searched exactly
    exact = default.search(QUERY, k=len(DOCS))
    pruning = QueryPruning(top_k=2, rescore_window=50)
    pruned = searcher(cluster, splade_encoder, index, pruning=pruning).search(QUERY, k=5)
    assert pruned.pruned_terms == len(splade_encoder.encode_queries([QUERY]).vectors[0]) - 2
    expected = exact_ranking(splade_encoder, QUERY)
    for hit in pruned:  # the window holds every match of the pruned query: full dot products
        assert hit.score == pytest.approx(expected[hit.id], rel=1e-3)
    found = {h.id for h in pruned}  # candidates come from the pruned query: exact order
    assert [h.id for h in pruned] == [h.id for h in exact if h.id in found][: len(found)]
    one_phase = searcher(cluster, splade_encoder, index, pruning=QueryPruning(top_k=2))
    assert one_phase.search(QUERY, k=5)[0].score < exact[0].score  # dropped terms never count


def test_df_pruning_reads_the_index_document_frequencies(cluster, splade_encoder, index_names):
    index = build(cluster, splade_encoder, index_names(cluster))
    pruning = QueryPruning(df_ratio=0.2)
    found = searcher(cluster, splade_encoder, index, pruning=pruning)
    vector = splade_encoder.encode_queries([QUERY]).vectors[0]
    table = found.idf_table()  # df counted over the stored vectors, kept in <index>-splade-idf
    df = dict(zip(table.ids.tolist(), table.df.tolist(), strict=True))
    common = [t for t in vector.ids.tolist() if df.get(t, 0) / table.documents > 0.2]
    hits = found.search(QUERY, k=5)
    assert table.documents == len(DOCS)
    assert common and hits.pruned_terms == len(common) < len(vector)


def test_dfs_query_then_fetch_makes_sharded_bm25_match_one_shard(
    cluster, splade_encoder, index_names
):
    one = build(cluster, splade_encoder, index_names(cluster, "one"), shards=1)
    three = build(cluster, splade_encoder, index_names(cluster, "three"), shards=3)
    query = "light and stars"
    single = {h.id: h.score for h in searcher(cluster, splade_encoder, one).bm25(query, k=10)}
    plain = {h.id: h.score for h in searcher(cluster, splade_encoder, three).bm25(query, k=10)}
    dfs = searcher(cluster, splade_encoder, three, search_type="dfs_query_then_fetch")
    global_stats = {h.id: h.score for h in dfs.bm25(query, k=10)}
    assert global_stats.keys() == single.keys()
    assert all(global_stats[d] == pytest.approx(single[d], rel=1e-5) for d in single)
    assert any(plain[d] != pytest.approx(single[d], rel=1e-5) for d in plain)
    splade_one = searcher(cluster, splade_encoder, one).search(QUERY, k=10)
    splade_three = searcher(cluster, splade_encoder, three).search(QUERY, k=10)
    assert [(h.id, h.score) for h in splade_three] == [(h.id, h.score) for h in splade_one]


def test_routed_documents_are_found_by_the_fetches(cluster, splade_encoder, index_names):
    records = [{**d, "tenant": TENANTS[n % len(TENANTS)]} for n, d in enumerate(DOCS)]
    index = build(
        cluster, splade_encoder, index_names(cluster), records, 3, "tenant", keep=("tenant",)
    )
    ids = [d["_id"] for d in DOCS]
    direct = cluster.request("POST", f"/{index}/_mget", body={"ids": ids})["docs"]
    assert not all(doc.get("found") for doc in direct)  # plain _mget misses routed documents
    assert cluster.fetch_field(index, ids, "tenant") == {d["_id"]: d["tenant"] for d in records}
    fetch = mget_fetcher(cluster.client, index, field="tenant")
    assert fetch(ids) == {d["_id"]: d["tenant"] for d in records}


def test_a_document_without_its_routing_value_is_reported(cluster, splade_encoder, index_names):
    records = [{**DOCS[0], "tenant": "red"}, dict(DOCS[1])]
    with pytest.raises(BulkFailedError) as failed:
        build(cluster, splade_encoder, index_names(cluster), records, 2, "tenant", ("tenant",))
    [failure] = failed.value.report.failures
    assert failure.id == DOCS[1]["_id"] and "routing field 'tenant'" in failure.reason
