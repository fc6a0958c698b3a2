"""Pure builders: index bodies, _meta, query bodies, filters, fusion, metrics."""

from __future__ import annotations

import pytest

from colbert_rerank.fusion import Fusion, fuse, min_max, ranks
from splade_es.cluster.mapping import (
    IndexLayout,
    index_body,
    meta_differences,
    packaged_template,
    splade_meta,
)
from splade_es.evaluation.metrics import percentiles_ms, retrieval_metrics, same_top_k
from splade_es.search.query import bm25_query, search_body, splade_query, with_filters

FINGERPRINT = {"weights_sha256": "w" * 16, "tokenizer_sha256": "t" * 16}


def meta(layout=None, pooling="max"):
    layout = layout or IndexLayout()
    return splade_meta(
        model="m",
        fingerprint=FINGERPRINT,
        pooling=pooling,
        max_length=256,
        pruning="none",
        layout=layout,
    )


@pytest.mark.parametrize("mapping_type", ["rank_features", "sparse_vector"])
def test_index_body_from_template(mapping_type):
    layout = IndexLayout(
        mapping_type=mapping_type,
        field="terms",
        text_fields=("body",),
        shards=2,
        replicas=0,
        extra_properties={"year": {"type": "integer"}},
    )
    body = index_body(layout, meta(layout))
    properties = body["mappings"]["properties"]
    assert properties == {
        "body": {"type": "text"},
        "terms": {"type": mapping_type},
        "year": {"type": "integer"},
    }
    assert body["settings"]["index"] == {"number_of_shards": 2, "number_of_replicas": 0}
    stored = body["mappings"]["_meta"]["splade_es"]
    assert stored["mapping_type"] == mapping_type and stored["field"] == "terms"
    assert stored["key_encoding"] == "percent-dot-v1"
    assert "splade" not in packaged_template("index")["mappings"]["properties"]


def test_layout_and_extra_field_errors():
    with pytest.raises(ValueError, match="mapping_type='dense'"):
        IndexLayout(mapping_type="dense")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="without dots"):
        IndexLayout(field="a.b")
    with pytest.raises(ValueError, match="clashes"):
        index_body(IndexLayout(extra_properties={"text": {"type": "keyword"}}), meta())


def test_meta_differences_name_the_model_keys():
    assert meta_differences(meta(), meta()) == []
    problems = meta_differences(meta(), meta(pooling="sum"))
    assert problems == ["pooling: index has 'max', encoder has 'sum'"]


def test_splade_query_is_a_linear_dot_product():
    body = splade_query("splade", {"cat": 1.5, "%2E": 0.5}, "rank_features")
    assert body == {
        "bool": {
            "should": [
                {"rank_feature": {"field": "splade.cat", "linear": {}, "boost": 1.5}},
                {"rank_feature": {"field": "splade.%2E", "linear": {}, "boost": 0.5}},
            ]
        }
    }
    body = splade_query("splade", {"cat": 1.5}, "sparse_vector")
    assert body == {"bool": {"should": [{"term": {"splade": {"value": "cat", "boost": 1.5}}}]}}


def test_query_errors():
    with pytest.raises(ValueError, match="no terms after encoding and pruning"):
        splade_query("splade", {}, "rank_features")
    with pytest.raises(ValueError, match="weights must be > 0"):
        splade_query("splade", {"x": 0.0}, "rank_features")
    with pytest.raises(ValueError, match="query text is empty"):
        bm25_query("  ", ["text"])
    with pytest.raises(ValueError, match="is not a query clause"):
        with_filters({"match_all": {}}, [{"term": {"a": 1}, "range": {}}])
    with pytest.raises(ValueError, match="k=0"):
        search_body({"match_all": {}}, 0, False)


def test_filters_and_source():
    query = {"match_all": {}}
    assert with_filters(query, []) == query
    assert with_filters(query, [{"term": {"y": 1}}]) == {
        "bool": {"must": [query], "filter": [{"term": {"y": 1}}]}
    }
    assert search_body(query, 5, [])["_source"] is False  # [] would mean "everything"
    assert search_body(query, 5, ["title"])["_source"] == ["title"]
    assert search_body(query, 5, {"excludes": ["splade"]})["_source"] == {"excludes": ["splade"]}


def test_fusion():
    a = {"x": 10.0, "y": 5.0, "z": 0.0}
    b = {"y": 3.0, "w": 1.0}
    assert min_max(a) == {"x": 1.0, "y": 0.5, "z": 0.0}
    assert min_max({"p": 2.0, "q": 2.0}) == {"p": 1.0, "q": 1.0}
    assert ranks(a) == {"x": 1, "y": 2, "z": 3}
    assert fuse(a, b, Fusion("replace")) == b
    weighted = fuse(a, b, Fusion("weighted", weight=0.25))
    assert weighted["y"] == pytest.approx(0.75 * 0.5 + 0.25 * 1.0)
    assert weighted["w"] == pytest.approx(0.0)
    rrf = fuse(a, b, Fusion("rrf", rrf_k=60))
    assert rrf["y"] == pytest.approx(1 / 62 + 1 / 61)
    assert max(rrf, key=rrf.get) == "y"
    with pytest.raises(ValueError, match="fusion='max'"):
        Fusion("max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"weight=1\.5"):
        Fusion("weighted", weight=1.5)


def test_same_top_k_ignores_ties_at_the_cut():
    exact = {"a": 3.0, "b": 2.0, "c": 1.0, "d": 1.0}
    assert same_top_k({"a": 3, "b": 2, "c": 1}, exact, k=3)
    assert same_top_k({"a": 3, "b": 2, "d": 1}, exact, k=3)  # c and d tie at the cut
    assert not same_top_k({"a": 3, "c": 1, "d": 1}, exact, k=3)  # b is certain, missing
    assert same_top_k({"a": 1, "b": 1}, {"a": 1, "b": 1}, k=10)


def test_retrieval_metrics_and_percentiles():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    run = {"q1": {"d1": 2.0, "d3": 1.0}, "q2": {}}
    values = retrieval_metrics(qrels, run)
    assert values["ndcg@10"] == pytest.approx(0.5)  # q2 found nothing: counted as 0
    assert values["mrr@10"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="No query of the run"):
        retrieval_metrics(qrels, {"other": {"d": 1.0}})
    assert percentiles_ms([1.0, 2.0, 3.0, 4.0]) == {
        "latency_ms_p50": 2.5,
        "latency_ms_p95": pytest.approx(3.85),
    }
