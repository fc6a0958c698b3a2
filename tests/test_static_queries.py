"""Inference-free SPLADE queries: the IDF table, its companion index, and IDF query weights.

The pure parts (IDF, counting, query weights, the stored document) run without a node; the
rest runs against each real node, checked against brute force over the stored vectors.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner
from corpus_fixture import DOCS, QUERIES, write_beir

from splade_es.cli.searching import search as search_command
from splade_es.cluster.admin import index_uuid
from splade_es.cluster.companion import idf_index_name, load_idf_document, store_idf_document
from splade_es.data.corpus import FieldNames, from_records
from splade_es.encoding.features import FeatureVocabulary
from splade_es.evaluation.evaluator import EvalConfig, evaluate
from splade_es.indexing.bulk import BulkConfig, index_documents
from splade_es.indexing.splade_fields import SpladeFields, prepare_index
from splade_es.search.searcher import SearchConfig, Searcher
from splade_es.search.static_queries import (
    IdfTable,
    bm25_idf,
    document_frequencies,
    is_stale,
    table_document,
    table_from_document,
)

EXTRA = [
    {"_id": "extra-1", "title": "Tidal power", "text": "Turbines harvest energy from tides."},
    {"_id": "extra-2", "title": "Bee colonies", "text": "Honeybees dance to share directions."},
]


def reference_idf(df: int, n: int) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


# -- pure parts ---------------------------------------------------------------------------------


def test_bm25_idf_is_the_formula_and_always_positive():
    n = 7
    assert bm25_idf(np.arange(n + 1), n).tolist() == pytest.approx(
        [reference_idf(df, n) for df in range(n + 1)], rel=1e-6
    )
    assert bm25_idf([n], n)[0] > 0  # a term in every document still counts a little
    with pytest.raises(ValueError, match=r"must lie in 0..7 \(N\), got 0..8"):
        bm25_idf([0, 8], 7)


def test_document_frequencies_count_documents_not_weights_and_skip_foreign_entries():
    vocabulary = FeatureVocabulary(["a", "b", "c", "u.s."])
    stored = [
        {"a": 2.0, "b": 0.1},
        {"a": 0.5, "u%2Es%2E": 1.0, "other-model": 3.0},  # foreign key: not counted
        {"c": "bad", "b": -1},  # values that are not positive numbers: not counted
        None,  # a document without the field counts towards N only
    ]
    table = document_frequencies(stored, vocabulary)
    assert table.documents == 4
    assert dict(zip(table.ids.tolist(), table.df.tolist(), strict=True)) == {0: 2, 1: 1, 3: 1}
    assert table.idf.tolist() == pytest.approx([reference_idf(2, 4)] + [reference_idf(1, 4)] * 2)
    with pytest.raises(ValueError, match="read-only"):
        table.idf[0] = 1.0


def test_query_vector_weights_each_known_token_once_by_idf():
    table = IdfTable(10, np.array([2, 5, 9]), np.array([9, 1, 4]))
    vector = table.query_vector([9, 5, 5, 2, 9, 3, 10_000])  # 3 and 10000: df = 0
    assert vector.ids.tolist() == [5, 9, 2]  # highest weight first
    assert vector.weights.tolist() == pytest.approx(
        [reference_idf(1, 10), reference_idf(4, 10), reference_idf(9, 10)], rel=1e-6
    )
    assert len(table.query_vector([3, 4])) == 0 and len(table.query_vector([])) == 0


def test_table_document_round_trips_and_refuses_a_foreign_document():
    table = IdfTable(5, np.array([0, 30521]), np.array([5, 1]))
    document = table_document(table, {"weights_sha256": "abc"})
    back, fingerprint = table_from_document(document)
    assert (back.documents, back.ids.tolist(), back.df.tolist()) == (5, [0, 30521], [5, 1])
    assert fingerprint == {"weights_sha256": "abc"}
    with pytest.raises(ValueError, match=r"format 'x', not 'splade-es-idf/1'.*Delete"):
        table_from_document({**document, "format": "x"})


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match="distinct, non-negative and ascending"):
        IdfTable(3, np.array([4, 2]), np.array([1, 1]))
    with pytest.raises(ValueError, match="must be >= 1"):
        IdfTable(3, np.array([1, 2]), np.array([1, 0]))


def test_a_table_is_stale_beyond_ten_percent():
    assert not is_stale(100, 110) and not is_stale(100, 90)
    assert is_stale(100, 111) and is_stale(100, 89)
    assert not is_stale(0, 0) and is_stale(0, 1)


def test_a_bad_query_encoder_is_refused():
    with pytest.raises(ValueError, match=r"query_encoder='bm25': expected 'model' .* or 'idf'"):
        SearchConfig(index="docs", query_encoder="bm25")  # type: ignore[arg-type]
    run = CliRunner().invoke(search_command, ["q", "--index", "x", "--query-encoder", "tfidf"])
    assert run.exit_code == 2 and "'tfidf' is not one of 'model', 'idf'" in run.output


# -- against the real nodes ---------------------------------------------------------------------


def build(cluster, encoder, name, records=DOCS, mapping_type="auto"):
    prepare_index(cluster, encoder, name, mapping_type)
    add(cluster, encoder, name, records)
    return name


def add(cluster, encoder, name, records):
    index_documents(
        cluster,
        from_records(records, FieldNames()),
        [SpladeFields(encoder)],
        BulkConfig(index=name, progress=False),
    )


def idf_searcher(cluster, encoder, index):
    return Searcher(cluster, encoder, SearchConfig(index=index, query_encoder="idf"))


def brute_force_df(searcher, ids):
    """Document frequencies counted from each document's stored vector, read one by one."""
    return Counter(int(t) for doc_id in ids for t in searcher.stored_vector(doc_id).ids)


@pytest.fixture
def indexed(cluster, splade_encoder, index_names):
    return build(cluster, splade_encoder, index_names(cluster))


def check_table_and_scores(searcher, encoder, ids):
    table = searcher.idf_table()
    df = brute_force_df(searcher, ids)
    assert table.documents == len(ids)
    assert dict(zip(table.ids.tolist(), table.df.tolist(), strict=True)) == dict(df)
    stored = {doc_id: searcher.stored_vector(doc_id) for doc_id in ids}
    for query, relevant in QUERIES.values():
        tokens = set(encoder.token_ids(query))
        weights = {t: reference_idf(df[t], len(ids)) for t in tokens if df[t] > 0}
        vector = searcher.encode_query(query)
        assert dict(zip(vector.ids.tolist(), vector.weights.tolist(), strict=True)) == (
            pytest.approx(weights, rel=1e-6)
        )
        expected = {}
        for doc_id, doc in stored.items():
            score = sum(w * float(doc.weights[doc.ids == t].sum()) for t, w in weights.items())
            if score > 0:
                expected[doc_id] = score
        hits = searcher.search(query, k=len(ids))
        assert {h.id: h.score for h in hits} == pytest.approx(expected, rel=1e-4)
        assert relevant in [h.id for h in hits[:3]]


def test_idf_table_and_scores_equal_brute_force(cluster, splade_encoder, indexed):
    searcher = idf_searcher(cluster, splade_encoder, indexed)
    check_table_and_scores(searcher, splade_encoder, [d["_id"] for d in DOCS])


@pytest.mark.es
def test_idf_queries_on_a_sparse_vector_field(es_cluster, splade_encoder, index_names):
    index = build(es_cluster, splade_encoder, index_names(es_cluster), mapping_type="sparse_vector")
    searcher = idf_searcher(es_cluster, splade_encoder, index)
    assert searcher.mapping_type == "sparse_vector"
    check_table_and_scores(searcher, splade_encoder, [d["_id"] for d in DOCS])


def test_explain_and_hybrid_work_with_idf_queries(cluster, splade_encoder, indexed):
    searcher = idf_searcher(cluster, splade_encoder, indexed)
    query = "does aspirin prevent heart attacks"
    hit = searcher.search(query, k=1)[0]
    explanation = searcher.explain(query, hit.id)
    assert explanation.score == pytest.approx(hit.score, rel=1e-4)
    assert explanation.query_expansion == []  # no model: no expansion terms
    assert {i.token for i in explanation.impacts} <= set(
        splade_encoder.vocabulary.tokens(searcher.encode_query(query))
    )
    hybrid = searcher.hybrid(query, k=3)
    assert hybrid[0].id == "med-1" and [h.rank for h in hybrid] == list(range(1, len(hybrid) + 1))


def test_a_query_whose_tokens_no_document_holds_is_refused(cluster, splade_encoder, indexed):
    searcher = idf_searcher(cluster, splade_encoder, indexed)
    held = set(searcher.idf_table().ids.tolist())
    vocabulary = splade_encoder.vocabulary
    word = next(
        token
        for index, token in enumerate(vocabulary.keys)
        if index not in held
        and token.isalpha()
        and len(token) >= 6
        and splade_encoder.token_ids(token) == [index]
    )
    with pytest.raises(ValueError, match=rf"Query '{word}' has no token that occurs in"):
        searcher.search(word)
    model = Searcher(cluster, splade_encoder, SearchConfig(index=indexed))
    assert model.search(word)  # the model's expansion still finds something


def test_the_table_is_stored_once_reused_and_recomputed_when_stale(
    cluster, splade_encoder, indexed, monkeypatch, caplog
):
    first = idf_searcher(cluster, splade_encoder, indexed)
    assert first.idf_table().documents == len(DOCS)
    stored = load_idf_document(cluster, idf_index_name(indexed))
    assert stored is not None and stored["documents"] == len(DOCS)
    uuid = index_uuid(cluster, indexed)
    assert stored["fingerprint"] == {**splade_encoder.fingerprint(), "index_uuid": uuid}

    def must_not_count():
        raise AssertionError("the stored table should have been reused")

    add(cluster, splade_encoder, indexed, EXTRA[:1])  # 17 of 16: within 10%
    second = idf_searcher(cluster, splade_encoder, indexed)
    monkeypatch.setattr(second, "_count_stored", must_not_count)
    assert second.idf_table().documents == len(DOCS)

    add(cluster, splade_encoder, indexed, EXTRA[1:])  # 18 of 16: more than 10%
    third = idf_searcher(cluster, splade_encoder, indexed)
    with caplog.at_level(logging.WARNING, logger="splade_es.search.static_queries"):
        table = third.idf_table()
    assert "holds 18 documents, more than 10% away from the 16" in caplog.text
    assert table.documents == len(DOCS) + 2
    assert load_idf_document(cluster, idf_index_name(indexed))["documents"] == len(DOCS) + 2
    ids = [d["_id"] for d in DOCS + EXTRA]
    assert dict(zip(table.ids.tolist(), table.df.tolist(), strict=True)) == dict(
        brute_force_df(third, ids)
    )


def test_a_table_of_another_model_is_recomputed(cluster, splade_encoder, indexed, caplog):
    table = idf_searcher(cluster, splade_encoder, indexed).idf_table()
    other = table_document(IdfTable(len(DOCS), np.array([1]), np.array([1])), {"x": "y"})
    store_idf_document(cluster, idf_index_name(indexed), other)
    with caplog.at_level(logging.WARNING, logger="splade_es.search.static_queries"):
        again = idf_searcher(cluster, splade_encoder, indexed).idf_table()
    assert "computed for another model, or another index of that name" in caplog.text
    assert again.ids.tolist() == table.ids.tolist() and len(again) > 1


def test_a_table_of_an_index_deleted_and_rebuilt_under_its_name_is_recomputed(
    cluster, splade_encoder, indexed, caplog
):
    table = idf_searcher(cluster, splade_encoder, indexed).idf_table()
    stored = load_idf_document(cluster, idf_index_name(indexed))
    assert stored is not None
    moved = {**stored, "fingerprint": {**stored["fingerprint"], "index_uuid": "an-older-index"}}
    store_idf_document(cluster, idf_index_name(indexed), moved)
    with caplog.at_level(logging.WARNING, logger="splade_es.search.static_queries"):
        again = idf_searcher(cluster, splade_encoder, indexed).idf_table()
    assert "another index of that name" in caplog.text
    assert again.ids.tolist() == table.ids.tolist()


def test_an_unrelated_index_is_never_taken_as_the_companion(cluster, splade_encoder, indexed):
    cluster.request("PUT", f"/{idf_index_name(indexed)}", body={})
    searcher = idf_searcher(cluster, splade_encoder, indexed)
    with pytest.raises(ValueError, match="exists but is not an IDF companion index"):
        searcher.idf_table()


def test_concurrent_first_queries_compute_the_table_once(cluster, splade_encoder, indexed):
    searcher = idf_searcher(cluster, splade_encoder, indexed)
    original, calls = searcher._count_stored, []

    def slow_count():
        calls.append(1)
        time.sleep(0.2)
        return original()

    searcher._count_stored = slow_count
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(searcher.search("espresso coffee", k=1)))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(results) == 6
    assert {hits[0].id for hits in results} == {"cook-2"}


@pytest.mark.opensearch
def test_evaluate_runs_the_idf_stages(opensearch_cluster, splade_encoder, index_names, tmp_path):
    config = EvalConfig(
        dataset=write_beir(tmp_path / "tiny"),
        stages=("splade-idf", "splade"),
        index=index_names(opensearch_cluster),
        progress=False,
    )
    result = evaluate(opensearch_cluster, splade_encoder, config)
    assert list(result["stages"]) == ["splade-idf", "splade"]
    assert result["idf_table"]["documents"] == len(DOCS)
    idf = result["stages"]["splade-idf"]
    assert idf["num_queries"] == len(QUERIES) and idf["queries_failed"] == 0
    assert idf["ndcg@10"] > 0.5
    assert load_idf_document(opensearch_cluster, idf_index_name(config.index)) is not None
